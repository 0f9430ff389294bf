"""`otdoctor merge`: many machines' reports side by side, with what differs between them.

Input: JSON reports from `otdoctor check --format json` (one per machine, however they were
collected: Ansible, Slurm, scp) or bug-report zips from `otdoctor report`. The facts worth
comparing across a fleet (driver version, torch build, GPU, free VRAM) are read from the checks'
`data`, found by key name wherever a check put them, so a report from an older or newer otdoctor
(or one where some checks did not run) still merges: a missing fact is just empty.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.errors import UserError

MERGE_SCHEMA = "otdoctor-merge/1"
STATUS_ORDER = ("ok", "skip", "warn", "fail", "error")


@dataclass(frozen=True)
class FleetColumn:
    name: str  # column title
    sources: tuple[tuple[str, tuple[str, ...]], ...]  # (check id, data keys): the checks that own the fact
    areas: tuple[str, ...] = ()  # fallback: any check of these areas holding one of the keys
    unit: str | None = None  # "bytes": shown humanised
    tolerance: float = 0.0  # relative difference still counted as the same (free memory moves)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for _cid, keys in self.sources for k in keys)


# The fleet table's columns: values worth comparing across machines, and the checks that hold them.
FLEET_COLUMNS: tuple[FleetColumn, ...] = (
    FleetColumn("GPU", (("gpu.devices", ("name",)), ("gpu.vram", ("gpu",))), ("gpu",)),
    FleetColumn("driver", (("gpu.driver", ("driver_version",)),), ("gpu",)),
    FleetColumn("CUDA (driver)", (("gpu.driver", ("cuda_driver_version",)),), ("gpu",)),
    FleetColumn("torch", (("venv.torch", ("version",)),), ()),
    FleetColumn("torch build", (("venv.torch", ("cuda", "hip", "build")),), ()),
    FleetColumn("free VRAM", (("gpu.vram", ("free_vram_bytes",)),), ("gpu",), "bytes", 0.10),
    FleetColumn(
        "total VRAM",
        (("gpu.vram", ("total_vram_bytes",)), ("gpu.devices", ("memory_total_bytes",))),
        ("gpu",),
        "bytes",
        0.01,
    ),
    FleetColumn("Python", (("venv.python-version", ("version",)),), ()),
    FleetColumn("OneTrainer", (("onetrainer.git", ("commit",)),), ()),
)


@dataclass
class Machine:
    name: str
    source: str
    error: str | None = None  # the report could not be read
    exit_code: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {status, summary, required}
    facts: dict[str, Any] = field(default_factory=dict)
    hostname: str | None = None
    otdoctor_version: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or bool(self.exit_code)


@dataclass
class Fleet:
    machines: list[Machine]
    check_ids: list[str]
    fact_names: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if any(m.failed for m in self.machines) else 0

    def differing_facts(self) -> list[str]:
        out = []
        for column in FLEET_COLUMNS:
            if column.name not in self.fact_names:
                continue
            values = [m.facts.get(column.name) for m in self.machines if m.error is None]
            if not _same(values, column.tolerance):
                out.append(column.name)
        return out

    def differing_checks(self) -> list[str]:
        out = []
        for cid in self.check_ids:
            # A check missing from a report (older otdoctor, --skip) is unknown there, not different.
            statuses = {m.checks[cid]["status"] for m in self.machines if m.error is None and cid in m.checks}
            if len(statuses) > 1:
                out.append(cid)
        return out

    def not_ok_checks(self) -> list[str]:
        return [
            cid
            for cid in self.check_ids
            if any(m.checks.get(cid, {}).get("status") in ("warn", "fail", "error") for m in self.machines)
        ]


def _same(values: list[Any], tolerance: float) -> bool:
    if len(values) < 2:
        return True
    if tolerance and all(isinstance(v, (int, float)) for v in values):
        hi = max(values)
        return hi == 0 or (hi - min(values)) / hi <= tolerance
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) == 1


def _find(data: Any, keys: tuple[str, ...]) -> Any:
    """The first value under any of `keys`, searching nested dicts and lists (several GPUs: a list)."""
    if isinstance(data, Mapping):
        for key in keys:
            if key in data and data[key] not in (None, "", [], {}):
                value = data[key]
                if isinstance(value, Mapping):  # {"torch": {"version": ...}}
                    value = value.get("version", value)
                return value
        for value in data.values():
            found = _find(value, keys)
            if found is not None:
                return found
    elif isinstance(data, list):
        found = [f for f in (_find(item, keys) for item in data) if f is not None]
        if found:
            return found[0] if len(found) == 1 else found
    return None


def _column_value(column: FleetColumn, by_id: Mapping[Any, Mapping[str, Any]]) -> Any:
    for cid, keys in column.sources:
        c = by_id.get(cid)
        if c is not None:
            value = _find(c.get("data") or {}, keys)
            if value is not None:
                return value
    if not column.areas:
        return None
    for c in by_id.values():  # a renamed or plugin check that still says driver_version
        if c.get("area") in column.areas:
            value = _find(c.get("data") or {}, column.keys)
            if value is not None:
                return value
    return None


def facts_from_checks(checks: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Each fleet column's value, read from the checks' `data`."""
    out: dict[str, Any] = {}
    by_id = {c.get("id"): c for c in checks}
    for column in FLEET_COLUMNS:
        value = _column_value(column, by_id)
        if value is not None and not isinstance(value, Mapping):
            out[column.name] = value
    torch = (by_id.get("venv.torch") or {}).get("data") or {}
    if "torch build" in out and torch.get("build"):  # "CUDA 12.8", "ROCm 6.2", "CPU-only"
        out["torch build"] = {"cuda": f"CUDA {torch.get('cuda')}", "rocm": f"ROCm {torch.get('hip')}"}.get(
            torch["build"], "CPU-only"
        )
    return out


def facts_from_bundle(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts.json of an `otdoctor report` zip: richer than the checks' data, and preferred."""
    out: dict[str, Any] = {}
    gpu = facts.get("gpu") or {}
    devices = gpu.get("devices") or []

    def one_or_list(values: list[Any]) -> Any:
        values = [v for v in values if v is not None]
        return None if not values else values[0] if len(values) == 1 else values

    out["GPU"] = one_or_list([d.get("name") for d in devices])
    out["driver"] = gpu.get("driver_version")
    out["CUDA (driver)"] = gpu.get("cuda_driver_version")
    out["free VRAM"] = one_or_list([d.get("free_bytes") for d in devices])
    out["total VRAM"] = one_or_list([d.get("total_bytes") for d in devices])
    torch = facts.get("torch") or {}
    out["torch"] = torch.get("version")
    if torch.get("version"):
        out["torch build"] = (
            f"CUDA {torch['cuda']}" if torch.get("cuda") else f"ROCm {torch['hip']}" if torch.get("hip") else "CPU-only"
        )
    out["Python"] = (facts.get("venv") or {}).get("python")
    out["OneTrainer"] = (facts.get("onetrainer") or {}).get("commit")
    return {k: v for k, v in out.items() if v is not None}


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(check report, bundle facts or None). Raises ValueError with a short reason."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = {Path(n).name: n for n in zf.namelist()}
            if "checks.json" not in names:
                raise ValueError("a zip without checks.json (not an otdoctor report)")
            report = json.loads(zf.read(names["checks.json"]).decode("utf-8"))
            facts = json.loads(zf.read(names["facts.json"]).decode("utf-8")) if "facts.json" in names else None
        return report, facts
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError("empty file (did otdoctor run on that machine?)")
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        # Tools that capture stdout sometimes add lines around the JSON; take the outermost object.
        start, end = text.find("{"), text.rfind("}")
        try:
            report = json.loads(text[start : end + 1]) if start >= 0 else None
        except json.JSONDecodeError:
            report = None
        if report is None:
            raise ValueError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    return report, None


def _unreadable(path: Path, report: Any) -> Machine | None:
    """A row for a report that holds no checks, or None for a usable one."""
    if isinstance(report, dict) and report.get("otdoctor_error") and "checks" not in report:
        # Written by the fleet playbook for a host where otdoctor itself could not run.
        return Machine(str(report.get("host") or path.stem), str(path), error=str(report["otdoctor_error"]))
    if not isinstance(report, dict) or not isinstance(report.get("checks"), list):
        return Machine(path.stem, str(path), error="not an otdoctor check report (no 'checks' list)")
    return None


def _machine(path: Path) -> Machine:
    try:
        report, bundle_facts = _read(path)
    except (OSError, ValueError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        return Machine(path.stem, str(path), error=str(exc))
    bad = _unreadable(path, report)
    if bad is not None:
        return bad
    checks = [c for c in report["checks"] if isinstance(c, dict) and "id" in c]
    summary = report.get("summary") or {}
    facts = facts_from_checks(checks)
    if bundle_facts:
        facts.update(facts_from_bundle(bundle_facts))
    host = report.get("host") or {}
    return Machine(
        name=path.stem,
        source=str(path),
        exit_code=summary.get("exit_code"),
        counts={s: int(summary.get(s, 0) or 0) for s in STATUS_ORDER},
        checks={
            c["id"]: {"status": c.get("status"), "summary": c.get("summary"), "required": c.get("required")}
            for c in checks
        },
        facts=facts,
        hostname=host.get("hostname"),
        otdoctor_version=report.get("otdoctor_version"),
    )


def _name(machines: list[Machine]) -> None:
    """A row's name: the host name when the hosts differ, else the file name (Ansible and Slurm
    runs often have several entries on one host, or anonymised `<host>` reports)."""
    hostnames = [m.hostname for m in machines if m.error is None]
    unique = len(set(hostnames)) == len(hostnames) and all(h and h != "<host>" for h in hostnames)
    for m in machines:
        if unique and m.hostname and m.error is None:
            m.name = m.hostname
    seen: dict[str, int] = {}
    for m in machines:
        seen[m.name] = seen.get(m.name, 0) + 1
    for m in machines:  # the same file name in several folders: say which folder
        if seen[m.name] > 1:
            m.name = f"{Path(m.source).parent.name}/{m.name}"


def load(paths: Iterable[Path]) -> Fleet:
    paths = list(paths)
    if not paths:
        raise UserError("give at least one report: otdoctor merge REPORT.json ...", exit_code=2)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"report not found: {', '.join(missing)}", exit_code=2)
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.json")) + sorted(p.glob("*.zip")) if p.is_dir() else [p])
    if not files:
        raise UserError(f"no *.json reports in {', '.join(map(str, paths))}", exit_code=2)
    machines = [_machine(p) for p in files]
    _name(machines)
    check_ids: list[str] = []
    for m in machines:
        for cid in m.checks:
            if cid not in check_ids:
                check_ids.append(cid)
    fact_names = [f.name for f in FLEET_COLUMNS if any(f.name in m.facts for m in machines)]
    return Fleet(machines, check_ids, fact_names)


def summary(fleet: Fleet) -> dict[str, Any]:
    """The `--format json` answer: per machine, what differs, what fails."""
    differing_facts = fleet.differing_facts()
    differing_checks = fleet.differing_checks()
    return {
        "schema": MERGE_SCHEMA,
        "machines": [
            {
                "name": m.name,
                "source": m.source,
                "hostname": m.hostname,
                "error": m.error,
                "exit_code": m.exit_code,
                "counts": m.counts,
                "facts": m.facts,
                "checks": {cid: c["status"] for cid, c in m.checks.items()},
                "failing": [cid for cid, c in m.checks.items() if c["status"] in ("fail", "error")],
            }
            for m in fleet.machines
        ],
        "differences": {
            "facts": {
                name: {m.name: m.facts.get(name) for m in fleet.machines if m.error is None} for name in differing_facts
            },
            "checks": {
                cid: {m.name: m.checks.get(cid, {}).get("status") for m in fleet.machines if m.error is None}
                for cid in differing_checks
            },
        },
        "unreadable": {m.name: m.error for m in fleet.machines if m.error},
        "totals": {"machines": len(fleet.machines), "failed": sum(1 for m in fleet.machines if m.failed)},
        "exit_code": fleet.exit_code,
    }
