"""CI gates on a smoke run: a minimum speed (--min-its) and a VRAM ceiling (--max-vram-gb)."""

from __future__ import annotations

from dataclasses import dataclass

from otdoctor.errors import UserError
from otdoctor.smoke.results import SmokeResult


@dataclass(frozen=True)
class Gates:
    min_its: float | None = None
    max_vram_gb: float | None = None

    def check(self) -> Gates:
        """Refuse a gate that can never be met or never fail (zero, negative, NaN) as a usage error."""
        for name, gate in (("--min-its", self.min_its), ("--max-vram-gb", self.max_vram_gb)):
            if gate is not None and not gate > 0:
                raise UserError(f"{name} must be a positive number, got {gate:g}", exit_code=2)
        return self


def failures(result: SmokeResult, gates: Gates) -> list[str]:
    """Why this run fails CI: the run's own error first, then each gate it misses (empty: it passes)."""
    found: list[str] = []
    if not result.ok:
        found.append(result.error or "the smoke run failed")
        return found
    if gates.min_its is not None and (result.its or 0) < gates.min_its:
        found.append(f"speed {result.its or 0:.3f} it/s is below --min-its {gates.min_its}")
    if gates.max_vram_gb is not None:
        if result.peak_vram_bytes is None:
            found.append(f"peak VRAM unavailable ({result.peak_vram_source}): cannot check --max-vram-gb")
        elif result.peak_vram_bytes > gates.max_vram_gb * 1e9:
            found.append(f"peak VRAM {result.peak_vram_bytes / 1e9:.2f} GB exceeds --max-vram-gb {gates.max_vram_gb}")
    return found
