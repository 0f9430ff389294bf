"""`otdoctor vram`: the predicted peak with its breakdown, the VRAM it must fit in, and the changes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otdoctor.redact import redact
from otdoctor.render.emit import Destination, Draw
from otdoctor.render.units import human_bytes
from otdoctor.vram.report import VramReport

JSON_SCHEMA_VERSION = 1


def as_dict(r: VramReport) -> dict[str, Any]:
    steps = r.advice.steps if r.advice else ()
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "config": str(r.config_path),
        "plan": r.title,
        "peak_bytes": r.prediction.peak_bytes,
        "free_bytes": r.free_bytes,
        "free_source": r.free_source,
        "fits": r.fits,
        "components": [{"name": c.name, "bytes": c.bytes, "why": c.why} for c in r.prediction.components],
        "changes": [
            {"id": s.id, "what": s.what, "config_values": list(s.config_values), "saves_bytes": s.saves_bytes}
            for s in steps
        ],
        "changes_fit": r.advice.fits if r.advice else None,
        "command": r.command,
        "notes": list(r.prediction.notes),
    }


def _verdict(r: VramReport) -> str:
    peak = human_bytes(r.prediction.peak_bytes)
    if r.free_bytes is None:
        return f"Predicted peak {peak}; {r.free_source}"
    room = f"{human_bytes(r.free_bytes)} {r.free_source}"
    if r.fits:
        return f"Fits: predicted peak {peak}, {room}"
    return f"Will not fit: predicted peak {peak}, {room}"


def _change_lines(r: VramReport) -> list[str]:
    if r.advice is None:
        return []
    if not r.advice.steps:
        return ["", "No change of OneTrainer's settings otdoctor knows makes it fit on this GPU."]
    head = "Cheapest changes that make it fit:" if r.advice.fits else "Even all these changes do not make it fit:"
    lines = ["", head]
    for s in r.advice.steps:
        lines.append(f"  {s.what}: saves {human_bytes(s.saves_bytes)} (peak {human_bytes(s.peak_bytes)})")
        lines += [f"    --config-value {v}" for v in s.config_values]
    if r.command is not None:
        known = not r.command.startswith("#")  # commands.py: a comment when OneTrainer's folder is unknown
        head = "To train with them (from any folder):" if known else "To train with them, in OneTrainer's folder:"
        lines += ["", head, f"  {r.command}"]
    return lines


def render_text(r: VramReport) -> str:
    lines = [_verdict(r), f"  {r.title}", ""]
    width = max(len(c.name) for c in r.prediction.components)
    for c in r.prediction.components:
        lines.append(f"  {c.name:<{width}}  {human_bytes(c.bytes):>10}  {c.why}")
    lines += [f"  {'peak':<{width}}  {human_bytes(r.prediction.peak_bytes):>10}"]
    lines += [f"note: {n}" for n in r.prediction.notes]
    lines += _change_lines(r)
    return redact("\n".join(lines)) + "\n"


@dataclass(frozen=True)
class VramView:
    report: VramReport

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json}

    def _text(self, dest: Destination) -> None:
        dest.write(render_text(self.report))

    def _json(self, dest: Destination) -> None:
        dest.write(redact(json.dumps(as_dict(self.report), indent=2)) + "\n")
