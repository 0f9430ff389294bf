"""The Markdown summary of `otdoctor report`, made to paste into a GitHub issue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otdoctor.render import human_bytes

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


def render(facts: Mapping[str, Any], checks: Mapping[str, Any], files: Mapping[str, int]) -> str:
    mem = facts.get("memory") or {}
    cpu = facts.get("cpu") or {}
    rows = [
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
    ]
    cfg = facts.get("config")
    if cfg and cfg.get("error"):
        rows.append(("config", f"{cfg['path']} ({cfg.get('source')}): does not load: {cfg['error']}"))
    elif cfg:
        rows.append(
            (
                "config",
                f"{cfg['path']} ({cfg.get('source')}): {cfg.get('model_type')} "
                f"{cfg.get('training_method')}, {cfg.get('concepts')} concept(s)",
            )
        )
    out = ["## otdoctor report", "", "| | |", "|---|---|"]
    out += [f"| **{k}** | {_cell(v)} |" for k, v in rows]

    summary = checks.get("summary") or {}
    out += [
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
        out += [
            "",
            f"<details><summary>{len(skipped)} skipped checks</summary>",
            "",
            "| | check | why skipped |",
            "|---|---|---|",
            *skipped,
            "",
            "</details>",
        ]
    if problems:
        out += ["", "<details><summary>Warnings and failures: what was expected, how to fix</summary>", ""]
        for c in problems:
            out.append(f"- `{c['id']}`: {c['summary']}")
            if c.get("expected"):
                out.append(f"  - expected: {c['expected']}")
            if c.get("fix"):
                out.append(f"  - fix: {c['fix']['summary']}" + "".join(f" `{cmd}`" for cmd in c["fix"]["commands"]))
        out += ["", "</details>"]
    if files:
        out += ["", "<details><summary>Files in the attached zip</summary>", ""]
        out += [f"- `{name}` ({human_bytes(size)})" for name, size in files.items()]
        out += ["", "</details>"]
    out.append("")
    out.append(
        "Personal names and secrets were removed by `otdoctor report` (home folder → `~`, "
        "user → `<user>`, host → `<host>`, tokens → `***`)."
    )
    return "\n".join(out) + "\n"
