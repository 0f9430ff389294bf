"""The Markdown summary of `otdoctor report`, made to paste into a GitHub issue."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otdoctor.render.units import human_bytes

ICON = {"ok": "✅", "warn": "⚠️", "fail": "❌", "error": "💥", "skip": "⏭️"}


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _os(f: Mapping[str, Any]) -> str:
    o = f.get("os") or {}
    parts = [
        o.get("distro") or o.get("system") or "unknown",
        f"({o.get('system')} {o.get('release')}, {o.get('machine')})",
    ]
    if o.get("wsl"):
        parts.append("under WSL")
    if o.get("container"):
        parts.append(f"in a {o['container']} container")
    return " ".join(parts)


def _gpus(g: Mapping[str, Any]) -> str:
    devices = g.get("devices") or []
    if not devices:
        return f"none found ({g.get('error') or 'no NVIDIA GPU'})"
    out = []
    for d in devices:
        out.append(
            f"#{d.get('index')} {d.get('name')}, {human_bytes(d.get('total_bytes'))} "
            f"({human_bytes(d.get('free_bytes'))} free)"
            + (f", compute {d['compute_capability']}" if d.get("compute_capability") else "")
        )
    driver = f"driver {g.get('driver_version') or 'unknown'}"
    if g.get("cuda_driver_version"):
        driver += f" (CUDA {g['cuda_driver_version']})"
    return "; ".join(out) + f"; {driver}; read via {g.get('source')}"


def _python(f: Mapping[str, Any]) -> str:
    py = f"otdoctor runs on {f.get('otdoctor_python')}"
    pyenv = f.get("pyenv") or {}
    if pyenv.get("root"):
        req = pyenv.get("request") or {}
        py += f"; pyenv at {pyenv['root']} ({len(pyenv.get('versions') or [])} versions"
        if req.get("version"):
            py += f", {req['version']} selected by {req['source']}" + (
                "" if req.get("installed") else " (not installed)"
            )
        py += ")"
    else:
        py += "; no pyenv"
    return py


def _venv(f: Mapping[str, Any]) -> str:
    v = f.get("venv")
    if not v:
        return "no OneTrainer checkout"
    if not v.get("exists"):
        return f"{v['path']}: missing"
    text = f"{v['path']}: Python {v.get('python') or '?'}, {v.get('packages')} packages"
    if v.get("error"):
        text += f" (its Python fails: {v['error']})"
    return text


def _torch(f: Mapping[str, Any]) -> str:
    t = f.get("torch")
    if not t:
        return "not installed" if f.get("venv", {}).get("exists") else "no venv"
    if t.get("error"):
        return f"unreadable: {t['error']}"
    build = (
        f"CUDA {t['cuda']} build" if t.get("cuda") else f"ROCm {t['hip']} build" if t.get("hip") else "CPU-only build"
    )
    return f"{t.get('version')} ({build})"


def _onetrainer(f: Mapping[str, Any]) -> str:
    o = f.get("onetrainer") or {}
    if not o.get("path"):
        return "no checkout found"
    if not o.get("found"):
        return f"{o['path']} (from {o.get('source')}): does not exist"
    if not o.get("git"):
        return f"{o['path']}: not a git checkout"
    changed = o.get("changed_files") or []
    text = f"{o['path']} at `{(o.get('commit') or '')[:10]}` on {o.get('branch')} ({o.get('last_commit')})"
    text += f", {len(changed)} locally changed file(s)" + (f": {', '.join(changed[:8])}" if changed else "")
    if o.get("untracked_files"):
        text += f", {len(o['untracked_files'])} untracked"
    return text


def _config(cfg: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if not cfg:
        return []
    if cfg.get("error"):
        return [("config", f"{cfg['path']} ({cfg.get('source')}): does not load: {cfg['error']}")]
    return [
        (
            "config",
            f"{cfg['path']} ({cfg.get('source')}): {cfg.get('model_type')} "
            f"{cfg.get('training_method')}, {cfg.get('concepts')} concept(s)",
        )
    ]


def _not_collected(notes: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """The sections that could not be read, each with its reason (the rest of the report stands)."""
    return [("not collected", "; ".join(notes.values()))] if notes else []


def _fact_rows(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    mem = facts.get("memory") or {}
    cpu = facts.get("cpu") or {}
    return [
        (
            "otdoctor",
            f"{facts.get('otdoctor_version')}, {facts.get('generated_at')}"
            + (", offline" if facts.get("offline") else ""),
        ),
        ("OS", _os(facts)),
        (
            "CPU",
            f"{cpu.get('model') or 'unknown'} ({cpu.get('physical_cores')} cores, {cpu.get('logical_cores')} threads)",
        ),
        (
            "RAM",
            f"{human_bytes(mem.get('total_bytes'))} ({human_bytes(mem.get('available_bytes'))} available), "
            f"swap {human_bytes(mem.get('swap_total_bytes'))}",
        ),
        ("GPUs", _gpus(facts.get("gpu") or {})),
        ("Python", _python(facts)),
        ("venv", _venv(facts)),
        ("torch", _torch(facts)),
        ("OneTrainer", _onetrainer(facts)),
        *_config(facts.get("config")),
        *_not_collected(facts.get("not_collected")),
    ]


def _details(summary: str, body: list[str]) -> list[str]:
    return ["", f"<details><summary>{summary}</summary>", "", *body, "", "</details>"]


def _problem_lines(problems: list[Mapping[str, Any]]) -> list[str]:
    lines = []
    for c in problems:
        lines.append(f"- `{c['id']}`: {c['summary']}")
        if c.get("expected"):
            lines.append(f"  - expected: {c['expected']}")
        if c.get("fix"):
            lines.append(f"  - fix: {c['fix']['summary']}" + "".join(f" `{cmd}`" for cmd in c["fix"]["commands"]))
    return lines


def _check_lines(checks: Mapping[str, Any]) -> list[str]:
    summary = checks.get("summary") or {}
    out = [
        "",
        f"### Checks: {summary.get('ok', 0)} ok, {summary.get('warn', 0)} warnings, "
        f"{summary.get('fail', 0)} failed, {summary.get('error', 0)} crashed, {summary.get('skip', 0)} skipped",
        "",
        "| | check | result |",
        "|---|---|---|",
    ]
    problems = []
    skipped = []
    for c in checks.get("checks") or []:
        row = f"| {ICON.get(c['status'], c['status'])} | `{c['id']}` | {_cell(c['summary'])} |"
        if c["status"] == "skip":  # folded away below: they say why, but rarely matter to the bug
            skipped.append(row)
            continue
        out.append(row)
        if c["status"] in ("warn", "fail", "error"):
            problems.append(c)
    if skipped:
        out += _details(f"{len(skipped)} skipped checks", ["| | check | why skipped |", "|---|---|---|", *skipped])
    if problems:
        out += _details("Warnings and failures: what was expected, how to fix", _problem_lines(problems))
    return out


def render(facts: Mapping[str, Any], checks: Mapping[str, Any], files: Mapping[str, int]) -> str:
    out = ["## otdoctor report", "", "| | |", "|---|---|"]
    out += [f"| **{k}** | {_cell(v)} |" for k, v in _fact_rows(facts)]
    out += _check_lines(checks)
    if files:
        out += _details(
            "Files in the attached zip", [f"- `{name}` ({human_bytes(size)})" for name, size in files.items()]
        )
    out.append("")
    out.append(
        "Personal names and secrets were removed by `otdoctor report` (home folder → `~`, "
        "user → `<user>`, host → `<host>`, tokens → `***`)."
    )
    return "\n".join(out) + "\n"


def bundle_text(markdown: str, files: Mapping[str, str]) -> str:
    """`otdoctor report --print`: the summary, then every other file of the zip under its name."""
    parts = [markdown]
    for name, text in files.items():
        if name == "summary.md":
            continue
        parts.append(f"\n===== otdoctor-report/{name} =====\n{text}")
        if text and not text.endswith("\n"):
            parts.append("\n")
    return "".join(parts)


def bundle_contents(markdown: str, files: Mapping[str, str]) -> str:
    """The summary and what the zip would hold, shown before asking whether to write it."""
    listing = "".join(f"  {name} ({human_bytes(len(text.encode()))})\n" for name, text in files.items())
    return markdown + "\nThe zip would hold:\n" + listing


def written_note(output: Path, size_bytes: int, files: int) -> str:
    return (
        f"otdoctor: wrote {output} ({human_bytes(size_bytes)}, {files} files). "
        "Paste the summary (summary.md) into the issue and attach the zip.\n"
    )
