"""The command line: parse, call one function per command, render. Thin on purpose.

Exit codes: 0 healthy (warnings allowed), 1 a required check failed or crashed, 2 usage error,
130 Ctrl-C. Errors the user can act on are one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer.exceptions import TyperException

from otdoctor import __version__
from otdoctor.errors import UserError
from otdoctor.onetrainer.checkout import find_checkout
from otdoctor.redact import redact, register_env_secrets

app = typer.Typer(
    name="otdoctor",
    help="Environment and hardware doctor, installer and planner for OneTrainer.\n\n"
    "Start with `otdoctor check`: it finds your OneTrainer checkout, looks at Python, the venv, "
    "the GPU, checkpoints and config, and says what to fix.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"otdoctor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Environment and hardware doctor, installer and planner for OneTrainer."""


# Shared options ---------------------------------------------------------------------------------
OtDirOption = Annotated[
    Path | None,
    typer.Option(
        "--ot-dir",
        help="OneTrainer checkout. Default: $OT_DIR, the current folder, ~/Projects/OneTrainer, ~/OneTrainer.",
        file_okay=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A OneTrainer training config (exported JSON or preset). `check` defaults to the UI's last-used "
        "state, training_presets/#.json in the checkout.",
        dir_okay=False,
    ),
]
FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="Output format: text, json, junit or github.", case_sensitive=False)
]


def _out_console(output: Path | None):
    from otdoctor.render.text import console

    if output is None:
        return console()
    try:
        fh = open(output, "w", encoding="utf-8")
    except OSError as exc:
        raise _output_error(output, exc) from None
    return console(file=fh, force_color=False)


def _output_error(output: Path, exc: OSError) -> UserError:
    # --output into a missing folder, onto a folder (-o ''), a read-only place: the user's to fix
    return UserError(f"cannot write --output {output}: {exc.strerror or exc}", exit_code=2)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise _output_error(output, exc) from None


# otdoctor check ---------------------------------------------------------------------------------
@app.command("check")
def check_cmd(
    ot_dir: OtDirOption = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these checks (id, id prefix or area). Repeatable.")
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="Leave out these checks (id, id prefix or area). Repeatable.")
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List every check with its id, area and whether it can fix.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show details of passing checks and tracebacks.")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    fmt: FormatOption = "text",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to FILE.", dir_okay=False)
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="No network access at all; checks that need it are skipped.")
    ] = False,
    config: ConfigOption = None,
    models_dir: Annotated[
        list[Path] | None, typer.Option("--models-dir", help="A folder where you keep checkpoints. Repeatable.")
    ] = None,
    require_gpu: Annotated[
        bool, typer.Option("--require-gpu", help="No usable NVIDIA GPU is a failure (for GPU runners' CI pre-flight).")
    ] = False,
) -> None:
    """Diagnose OneTrainer's environment: Python, venv, GPU, checkpoints, config, disk.

    Exit code 0 when healthy (warnings allowed), 1 when a required check failed or crashed.
    """
    from otdoctor.engine.doctor import make_context, run_doctor, selected_checks
    from otdoctor.probe import Probe
    from otdoctor.render import FORMATS

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}", exit_code=2)
    if list_:
        from otdoctor.render.text import render_list

        render_list(selected_checks(only or (), skip or ()), _out_console(output))
        return
    if config is not None and not config.is_file():
        raise UserError(f"config file not found: {config}", exit_code=2)

    probe = Probe()
    ctx = make_context(probe, ot_dir, config, models_dir or (), offline=offline, require_gpu=require_gpu)
    if fmt == "text" and output is None and sys.stdout.isatty():
        from otdoctor.render.progress import status_reporter
        from otdoctor.render.text import console

        with console().status("Checking…") as status:
            ctx.options.extra["progress"] = status_reporter(status)  # long checks (image scans) report here
            report = run_doctor(ctx, only or (), skip or ())
    else:
        report = run_doctor(ctx, only or (), skip or ())

    if fmt == "text":
        from otdoctor.render import text

        out = _out_console(output)
        text.render(report, out, verbose=verbose, strict=strict)
    elif fmt == "json":
        from otdoctor.render import jsonout

        _write(jsonout.render(report, strict), output)
    elif fmt == "junit":
        from otdoctor.render import junit

        _write(junit.render(report, strict), output)
    else:
        from otdoctor.render import github

        _write(github.render(report, strict), output)
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path:
            with open(summary_path, "a", encoding="utf-8") as fh:
                fh.write(github.step_summary(report))
    raise typer.Exit(report.exit_code(strict))


# ---- otdoctor gpu (GPU checks) -----------------------------------------------------------------
@app.command("gpu")
def gpu_cmd(
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Output format: text or json.", case_sensitive=False)
    ] = "text",
) -> None:
    """Show the NVIDIA GPUs and every process holding GPU memory, with its user and full command line.

    Like the lower half of nvidia-smi, plus who owns each process. Memory NVML cannot report
    (Windows WDDM, WSL) shows as unknown. Set OTDOCTOR_NVML_SNAPSHOT=FILE to show a recorded
    machine (scripts/record_nvml.py makes one). Exit code 1 when no NVIDIA GPU can be read.
    """
    from otdoctor.gpu.reasoning import holders, invisible_explanation
    from otdoctor.probe import Probe
    from otdoctor.render import gpu as gpu_render

    fmt = fmt.lower()
    if fmt not in ("text", "json"):
        raise UserError(f"unknown --format {fmt!r}; choose text or json", exit_code=2)
    probe = Probe()
    info = probe.gpu()
    rows = holders(info, probe.process)
    if fmt == "json":
        _write(gpu_render.render_json(info, rows, probe.current_user()), None)
    else:
        gpu_render.render_text(info, rows, _out_console(None), invisible_explanation(info))
    raise typer.Exit(0 if info.devices else 1)


# ---- otdoctor models (checkpoints) -------------------------------------------------------------
models_app = typer.Typer(
    help="Checkpoints: list the catalog and what is on disk, verify files, download models.\n\n"
    "The catalog (RealVisXL V4.0, Hyper Realism V3, plus your own entries in "
    "~/.config/otdoctor/models.toml) says what each file must be: size, sha256, architecture.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(models_app, name="models")
ModelsDirOption = Annotated[
    list[Path] | None, typer.Option("--models-dir", help="A folder where you keep checkpoints. Repeatable.")
]


def _models_inventory(ot_dir: Path | None, config: Path | None, models_dir: list[Path] | None):
    from otdoctor.checkpoints.inventory import take_inventory
    from otdoctor.probe import Probe

    if config is not None and not config.is_file():
        raise UserError(f"config file not found: {config}", exit_code=2)
    for folder in models_dir or ():
        if not folder.expanduser().is_dir():  # a typo would otherwise read as "no checkpoints found"
            raise UserError(f"--models-dir {folder} is not a folder", exit_code=2)
    probe = Probe()
    located = find_checkout(probe, ot_dir)
    return probe, located.path, take_inventory(probe.env, probe.home, models_dir or (), located.path, config)


@models_app.command("list")
def models_list_cmd(
    ot_dir: OtDirOption = None,
    config: ConfigOption = None,
    models_dir: ModelsDirOption = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Also list every model repository in the Hugging Face cache.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the catalog, where each model was found and its state (from the verify cache; reads no file whole)."""
    from otdoctor.checkpoints.hashing import VerifyCache
    from otdoctor.checkpoints.inventory import verify_inventory

    probe, _ot, inv = _models_inventory(ot_dir, config, models_dir)
    verify_inventory(inv, VerifyCache(env=probe.env), do_hash=False, include_others=True)
    repos = None
    if all_:
        repos = []
        for place in inv.caches:
            if not place.path.is_dir():
                continue
            from huggingface_hub import scan_cache_dir  # slow import: only here

            try:
                info = scan_cache_dir(place.path)
            except Exception:  # a cache folder huggingface_hub does not recognise is not an error here
                continue
            repos += [
                {
                    "repo_id": r.repo_id,
                    "size_on_disk": r.size_on_disk,
                    "nb_files": r.nb_files,
                    "repo_path": str(r.repo_path),
                }
                for r in info.repos
                if r.repo_type == "model"
            ]
    if json_:
        import json

        data = {
            "catalog": [
                {
                    "name": e.name,
                    "title": e.title,
                    "architecture": e.architecture,
                    "source": e.source,
                    "where": e.where,
                    "origin": e.origin,
                    "download": e.download_command,
                    "found": [
                        {
                            "path": str(f.path),
                            "how": f.how,
                            **(inv.verdicts[f.path].as_dict() if f.path in inv.verdicts else {}),
                        }
                        for f in inv.found.get(e.name, [])
                    ],
                }
                for e in inv.catalog
            ],
            "others": [inv.verdicts[f.path].as_dict() for f in inv.others if f.path in inv.verdicts],
            "hf_cache_repos": repos,
        }
        _write(redact(json.dumps(data, indent=1)) + "\n", None)
        return
    from otdoctor.render.models import render_list

    render_list(inv, _out_console(None), repos)


@models_app.command("verify")
def models_verify_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to verify. Default: every model found.")
    ] = None,
    ot_dir: OtDirOption = None,
    config: ConfigOption = None,
    models_dir: ModelsDirOption = None,
    no_hash: Annotated[
        bool, typer.Option("--no-hash", help="Check structure, size and architecture only; skip sha256.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Verify checkpoints: complete, not an HTML page or git-lfs pointer, right architecture and sha256.

    sha256 results are cached by file identity (device, inode, size, mtime), so verifying an
    unchanged file again does not read it. Exit code 1 when any file is bad.
    """
    from otdoctor.checkpoints.hashing import VerifyCache
    from otdoctor.checkpoints.inventory import verify_inventory
    from otdoctor.checkpoints.locate import scan
    from otdoctor.checkpoints.verify import Verifier
    from otdoctor.render.models import hash_progress, render_verdicts

    probe, _ot, inv = _models_inventory(ot_dir, config, models_dir)
    cache = VerifyCache(env=probe.env)
    show_bar = sys.stderr.isatty() and not json_
    how: dict[Path, str] = {f.path: f.how for copies in inv.found.values() for f in copies}
    how.update({f.path: f.how for f in inv.others})
    with hash_progress(show_bar) as (on_start, on_bytes):
        if paths:
            targets = []
            for p in paths:
                p = p.expanduser()
                if p.is_dir() and not (p / "model_index.json").is_file():
                    targets += [(f, None, inv.expected_arch, "the config's model_type") for f in scan(p)]
                else:
                    targets.append((p, None, inv.expected_arch, "the config's model_type"))
            if not targets:
                raise UserError(
                    f"no model files (.safetensors, .ckpt, diffusers folders) under {', '.join(map(str, paths))}"
                )
            verdicts = Verifier(inv.catalog, cache, do_hash=not no_hash).verify(targets, on_start, on_bytes)
        else:
            verdicts = list(verify_inventory(inv, cache, not no_hash, True, on_start, on_bytes).values())
            if not verdicts:
                raise UserError(
                    "no checkpoints found; name files, or use --models-dir / --config",
                    hint="otdoctor models list shows where otdoctor looked",
                )
    if json_:
        import json

        _write(redact(json.dumps([v.as_dict() for v in verdicts], indent=1)) + "\n", None)
    else:
        render_verdicts(verdicts, _out_console(None), how)
    raise typer.Exit(1 if any(v.problems for v in verdicts) else 0)


@models_app.command("download")
def models_download_cmd(
    name: Annotated[
        str, typer.Argument(help="Catalog name (otdoctor models list), e.g. realvisxl-v4 or hyper-realism-v3.")
    ],
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest",
            help="Folder to save into. Default: the Hugging Face cache (HF models) or the "
            "OneTrainer checkout's models/ folder (Civitai models).",
            file_okay=False,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help="File holding your Civitai API key (default: $CIVITAI_TOKEN).", dir_okay=False
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Take the expected size and sha256 from otdoctor's catalog, not the Civitai API."
        ),
    ] = False,
    retries: Annotated[
        int, typer.Option("--retries", help="Resume this many times within one run when the connection drops.", min=0)
    ] = 2,
    ot_dir: OtDirOption = None,
) -> None:
    """Download a catalog model and verify it (size, structure, architecture, sha256).

    Civitai downloads stream into NAME.part and resume from there when run again; the file gets its
    final name only once it matches. Hugging Face downloads go through huggingface_hub.
    """
    from otdoctor.checkpoints.catalog import find_entry, load_catalog
    from otdoctor.checkpoints.hashing import VerifyCache
    from otdoctor.probe import Probe
    from otdoctor.render.models import download_progress, hash_progress, render_verdicts

    probe = Probe()
    entry = find_entry(load_catalog(probe.env), name)
    cache = VerifyCache(env=probe.env)
    err = _out_console(None)
    tty = sys.stderr.isatty()
    if entry.source == "civitai":
        from otdoctor.checkpoints.download import download_civitai, read_token

        token = read_token(probe.env, token_file)
        if dest is None:
            located = find_checkout(probe, ot_dir)
            if located.path is None:
                raise UserError(
                    "no --dest given and no OneTrainer checkout found to put it in models/",
                    exit_code=2,
                    hint=f"otdoctor models download {entry.name} --dest /path/to/models",
                )
            dest = located.path / "models"
        part_hint = dest / (entry.filename + ".part")
        try:
            with download_progress(tty, entry.filename) as (on_start, on_bytes):
                result = download_civitai(
                    entry,
                    dest.expanduser(),
                    probe.env,
                    token,
                    offline,
                    retries,
                    on_start,
                    on_bytes,
                    note=lambda m: sys.stderr.write(redact(f"otdoctor: {m}") + "\n"),
                    cache=cache,
                )
        except KeyboardInterrupt:
            if part_hint.exists():
                sys.stderr.write(f"\notdoctor: interrupted; {part_hint} is kept and the same command resumes it\n")
            raise
        state = "already there, sha256 verified" if result.already_there else "downloaded, size and sha256 verified"
        if result.resumed_from_bytes:
            state += f"; resumed at byte {result.resumed_from_bytes}"
        err.print(redact(f"{entry.title}: {result.path} ({state})"), markup=False, highlight=False)
        return
    import dataclasses

    from otdoctor.checkpoints.download import download_hf, hf_expected_file
    from otdoctor.checkpoints.verify import Verifier

    known = hf_expected_file(entry, offline)
    if known is not None and known not in entry.files:
        entry = dataclasses.replace(entry, files=(*entry.files, known))
    path = download_hf(entry, dest.expanduser() if dest else None, probe.env, probe.home, offline)
    with hash_progress(tty) as (on_start, on_bytes):
        verdict = Verifier([entry], cache).verify([(path, entry, None, "")], on_start, on_bytes)[0]
    render_verdicts([verdict], err)
    if verdict.problems:
        raise UserError(
            f"{path} was downloaded but does not match the catalog",
            hint=f"move it away and download again: mv '{path}' '{path}.bad'",
        )


# ---- otdoctor install / fix / explain ----------------------------------------------------------
def _confirm_fn(yes: bool):
    """--yes answers every question; without a terminal to ask on, a question is a usage error."""

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UserError(f"{question}\n  (no terminal to ask on: pass --yes to answer yes)", exit_code=2)
        return typer.confirm(question, default=True)

    return confirm


@app.command("install")
def install_cmd(
    dir_: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Where OneTrainer goes. Default: ~/Projects/OneTrainer (the guide's place).", file_okay=False
        ),
    ] = None,
    repo_url: Annotated[
        str | None,
        typer.Option(
            "--repo-url", help="Repository to clone (URL or local path). Default: upstream Nerogar/OneTrainer."
        ),
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="Branch, tag or commit to check out. Default: the repository's default branch."),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(
            "--python", help="Python version for pyenv (X.Y or X.Y.Z), within what the checkout accepts. Default: 3.10."
        ),
    ] = None,
    platform: Annotated[
        str,
        typer.Option(
            "--platform",
            help="Requirements: auto (detect like the launcher, plus GPU generation), cuda, cuda-legacy, rocm or cpu.",
        ),
    ] = "auto",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; answer yes to every question.")] = False,
) -> None:
    """Install OneTrainer the way the guide does: clone, pyenv Python, venv, requirements, then check.

    Re-runnable: after Ctrl-C, a kill or a lost network, run the same command again and it continues;
    phases already done are verified and skipped. User data (workspace, models, training_concepts,
    secrets.json) is never touched; a broken venv is moved aside and removed only after the new one
    works. pip's output is kept whole in <dir>/otdoctor-install.log. Honours OT_PLATFORM_REQUIREMENTS
    and pip's own environment (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX...).
    """
    from rich.markup import escape

    from otdoctor.install.installer import PHASES, Installer, InstallOptions, final_check
    from otdoctor.probe import Probe
    from otdoctor.render import text
    from otdoctor.render.install_view import InstallView
    from otdoctor.render.text import console

    out = console()
    view = InstallView(out, _confirm_fn(yes), total_phases=len(PHASES) + 1)
    opts = InstallOptions(dir_, repo_url, ref, python, platform.lower(), dry_run, yes)
    probe = Probe()
    inst = Installer(probe, opts, view)
    warnings = inst.preflight()
    assert inst.platform is not None
    out.print(f"[bold]OneTrainer install[/] into {escape(str(inst.dir))}")
    out.print(f"  from {escape(redact(inst.repo_url))}" + (f" at {escape(ref)}" if ref else ""))
    out.print(
        f"  Python {escape(inst.python_request)} through pyenv; requirements-global.txt + "
        f"{escape(inst.platform.file)} ({escape(inst.platform.reason)})"
    )
    for w in warnings:
        out.print(f"  [yellow]![/] {escape(redact(w))}")
    steps = inst.plan()
    out.print()
    out.print("[bold]Plan[/]")
    for step in steps:
        mark = "[green]✓[/]" if step.done else "[cyan]•[/]"
        out.print(f"  {mark} {step.phase}: {escape(redact(step.summary))}")
        for cmd in step.commands:
            out.print(f"      {escape(redact(cmd))}")
    out.print(f"  [cyan]•[/] check: otdoctor check --ot-dir {escape(str(inst.dir))}")
    out.print()
    if dry_run:
        out.print("dry run: nothing was changed")
        raise typer.Exit(0)
    if not all(s.done for s in steps) and not _confirm_fn(yes)("Go ahead?"):
        raise typer.Exit(1)
    try:
        inst.run()
    except BaseException:
        view.fail()
        raise
    view.phase("check", "otdoctor check")
    report = final_check(probe, inst.dir)
    counts = report.counts()
    view.done("check", ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    out.print()
    text.render(report, out)
    code = report.exit_code()
    out.print(
        f"OneTrainer is installed in {escape(str(inst.dir))}; start it with: cd {escape(str(inst.dir))} && ./start-ui.sh"
        if code == 0
        else "OneTrainer is installed, but otdoctor check found problems (above); `otdoctor fix` repairs what it can"
    )
    out.print(
        f"[dim]training setup (config, dataset, checkpoints): otdoctor check --ot-dir {escape(str(inst.dir))} --config CONFIG.json[/]"
    )
    raise typer.Exit(code)


@app.command("fix")
def fix_cmd(
    check_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only these checks (id, id prefix or area). Default: every failing check that can be fixed."
        ),
    ] = None,
    ot_dir: OtDirOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what each fix would run; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before each fix.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow fixes that stop processes (the GPU's VRAM fix).")
    ] = False,
    models_dir: Annotated[
        list[Path] | None, typer.Option("--models-dir", help="A folder where you keep checkpoints. Repeatable.")
    ] = None,
    config: ConfigOption = None,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place", help="dataset.resolution: replace the original images instead of writing a new folder."
        ),
    ] = False,
) -> None:
    """Repair what `otdoctor check` found: show each fix as commands, ask, run it, check again.

    Exit code 0 when every selected check passes afterwards, 1 otherwise. What cannot be repaired
    automatically (a space in the path, a FAT32 drive, a driver update) is printed as manual steps.
    """
    from otdoctor.engine.doctor import make_context
    from otdoctor.engine.fixer import run_fix
    from otdoctor.probe import Probe
    from otdoctor.render.fix_view import FixView
    from otdoctor.render.text import console

    if config is not None and not config.is_file():
        raise UserError(f"config file not found: {config}", exit_code=2)
    if ot_dir is not None and not ot_dir.exists():
        # Otherwise fixes are offered for a checkout that is not there (`cd /wrong/path && ...`).
        raise UserError(
            f"OneTrainer checkout not found: {ot_dir}",
            exit_code=2,
            hint=f"correct --ot-dir, or install OneTrainer there: otdoctor install --dir {ot_dir}",
        )
    out = console()
    view = FixView(out, _confirm_fn(yes))
    probe = Probe()
    ctx = make_context(probe, ot_dir, config, models_dir or ())
    ctx.options.extra["force"] = force
    ctx.options.extra["yes"] = yes
    ctx.options.extra["ui"] = view
    ctx.options.extra["in_place"] = in_place
    from otdoctor.render.progress import BarReporter

    ctx.options.extra["progress"] = BarReporter(out)  # long fixes (padding images) show a bar
    code = run_fix(ctx, check_ids or (), dry_run=dry_run, view=view)
    raise typer.Exit(code)


@app.command("explain")
def explain_cmd(
    logfile: Annotated[
        str | None,
        typer.Argument(help="A log file with OneTrainer's output, or - for stdin.", metavar="[LOGFILE|-]"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """Explain OneTrainer's error output: a traceback, a failed install log, a training log.

    Matches the text against otdoctor's table of known problems and prints, for each one found,
    the diagnosis, the fix and the otdoctor command that applies it. Exit code 0 when a known
    problem was recognised, 1 when none was.
    """
    from otdoctor.explain.known_problems import explain_text, last_error_line, read_input
    from otdoctor.render.explain_view import render_json, render_text
    from otdoctor.render.text import console

    if logfile is None:
        if sys.stdin.isatty():
            raise UserError(
                "give a log file, or pipe the output in: ./start-ui.sh 2>&1 | otdoctor explain -", exit_code=2
            )
        logfile = "-"
    if fmt.lower() not in ("text", "json"):
        raise UserError(f"unknown --format {fmt!r}; choose text or json", exit_code=2)
    source = read_input(logfile)
    matches = explain_text(source)
    if fmt.lower() == "json":
        sys.stdout.write(render_json(matches))
    else:
        render_text(matches, console(), last_error_line(source))
    raise typer.Exit(0 if matches else 1)


# ---- otdoctor smoke / estimate -----------------------------------------------------------------
def _smoke_progress(enabled: bool):
    """A one-line live status on stderr (TTY only): phase, bar and rate as OneTrainer draws them."""
    if not enabled:
        return None
    state = {"last": 0.0}

    def show(msg: str, bar=None) -> None:
        import time as _time

        now = _time.monotonic()
        if bar is not None:
            if now - state["last"] < 0.2:
                return
            total = f"/{bar.total:.0f}" if bar.total else ""
            rate = f" {bar.rate_its:.2f} it/s" if bar.rate_its else ""
            msg = f"{bar.desc} {bar.n:.0f}{total}{rate}"
        state["last"] = now
        sys.stderr.write("\r\x1b[2K" + redact(msg)[:150])
        if bar is None:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


@app.command("smoke")
def smoke_cmd(
    ot_dir: OtDirOption = None,
    config: ConfigOption = None,
    steps: Annotated[int, typer.Option("--steps", help="Steps to measure, after the warm-up.")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", help="First steps left out of the speed (CUDA warm-up).")] = 3,
    synthetic: Annotated[
        bool,
        typer.Option(
            "--synthetic", help="Train a UNet with random weights instead of OneTrainer (no download needed)."
        ),
    ] = False,
    tiny: Annotated[
        bool,
        typer.Option(
            "--tiny", help="Synthetic run of a toy UNet on the CPU: proves torch+diffusers train, in seconds."
        ),
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", help="sdxl or sd15 (default: from --config, else sdxl).")
    ] = None,
    resolution: Annotated[int | None, typer.Option("--resolution", help="Training resolution in pixels.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per step.")] = None,
    dtype: Annotated[
        str | None,
        typer.Option("--dtype", help="bf16, fp16 or fp32 (default: the config's train dtype, else bf16)."),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary folder (config, dataset, workspace) for inspection.")
    ] = False,
    python: Annotated[
        Path | None,
        typer.Option(
            "--python",
            help="Interpreter with torch and diffusers for --synthetic (default: OneTrainer's venv).",
            dir_okay=False,
        ),
    ] = None,
    base_model: Annotated[
        str | None,
        typer.Option("--base-model", help="Base model for OneTrainer mode (default: the config's base_model_name)."),
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Extra OneTrainer --config-value KEY=VALUE. Repeatable.")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="Synthetic: auto, cuda or cpu.")] = "auto",
    no_checkpointing: Annotated[
        bool, typer.Option("--no-gradient-checkpointing", help="Synthetic: train without gradient checkpointing.")
    ] = False,
    fused_back_pass: Annotated[
        bool | None,
        typer.Option(
            "--fused-back-pass/--no-fused-back-pass",
            help="Synthetic: step each parameter during backward (default: from --config).",
        ),
    ] = None,
    min_its: Annotated[
        float | None, typer.Option("--min-its", help="Fail (exit 1) when slower than this many it/s (CI gate).")
    ] = None,
    max_vram_gb: Annotated[
        float | None,
        typer.Option("--max-vram-gb", help="Fail (exit 1) when peak VRAM exceeds this many GB (CI gate)."),
    ] = None,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="Give up after this many seconds.")] = 3600.0,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json.", case_sensitive=False)] = "text",
) -> None:
    """Prove this machine trains, and measure how fast: a short real training run.

    OneTrainer mode (a checkout, its venv and the base model present): runs OneTrainer's own
    scripts/train.py on a tiny dataset in a temporary folder, one epoch, no sampling, saves or
    backups, and stops it cleanly after the measured steps. Synthetic mode (--synthetic, or no base
    model yet): trains the architecture's UNet with random weights. The result (it/s with spread,
    peak VRAM, model load, caching rate) is saved for `otdoctor estimate`.
    """
    import json

    from otdoctor.render.plan import render_smoke
    from otdoctor.smoke import SmokeRequest, check_request, result_json, run_smoke
    from otdoctor.smoke import results as smoke_results

    fmt = fmt.lower()
    if fmt not in ("text", "json"):
        raise UserError(f"unknown --format {fmt!r}; choose text or json", exit_code=2)
    if dtype is not None and dtype not in ("bf16", "fp16", "fp32"):
        raise UserError(f"unknown --dtype {dtype!r}; choose bf16, fp16 or fp32", exit_code=2)
    if model is not None and model not in ("sdxl", "sd15", "tiny"):
        raise UserError(f"unknown --model {model!r}; choose sdxl or sd15", exit_code=2)
    if config is not None and not config.is_file():
        raise UserError(f"config file not found: {config}", exit_code=2)
    req = SmokeRequest(
        ot_dir=ot_dir,
        config=config,
        synthetic=synthetic,
        tiny=tiny,
        model=model,
        resolution=resolution,
        batch_size=batch_size,
        dtype=dtype,
        steps=steps,
        warmup=warmup,
        keep=keep,
        python=python,
        base_model=base_model,
        overrides=tuple(set_ or ()),
        device=device,
        gradient_checkpointing=False if no_checkpointing else None,
        fused_back_pass=fused_back_pass,
        timeout_s=timeout_s,
    )
    req = check_request(req)  # usage errors before the "running" line, so they stay one line
    for name, gate in (("--min-its", min_its), ("--max-vram-gb", max_vram_gb)):
        if gate is not None and not gate > 0:
            raise UserError(f"{name} must be a positive number, got {gate:g}", exit_code=2)
    progress = _smoke_progress(sys.stderr.isatty() and fmt == "text")
    if progress is None and fmt == "text":
        sys.stderr.write("otdoctor smoke: running (this takes a while)…\n")
    result, why = run_smoke(
        req, progress, notice=lambda line: sys.stderr.write(redact(f"otdoctor smoke: {line}") + "\n")
    )
    if progress is not None:
        sys.stderr.write("\r\x1b[2K")
    path = smoke_results.save(result)
    failures: list[str] = []
    if not result.ok:
        failures.append(result.error or "the smoke run failed")
    if min_its is not None and result.ok and (result.its or 0) < min_its:
        failures.append(f"speed {result.its or 0:.3f} it/s is below --min-its {min_its}")
    if max_vram_gb is not None and result.ok:
        if result.peak_vram_bytes is None:
            failures.append(f"peak VRAM unavailable ({result.peak_vram_source}): cannot check --max-vram-gb")
        elif result.peak_vram_bytes > max_vram_gb * 1e9:
            failures.append(f"peak VRAM {result.peak_vram_bytes / 1e9:.2f} GB exceeds --max-vram-gb {max_vram_gb}")
    if fmt == "json":
        data = json.loads(result_json(result, path, why))
        data["gate_failures"] = failures
        _write(redact(json.dumps(data, indent=1)) + "\n", None)
    else:
        render_smoke(result, path)
        for f in failures[1 if not result.ok else 0 :]:
            sys.stdout.write(redact(f"✖ {f}") + "\n")
    raise typer.Exit(1 if failures else 0)


def _clock_option(value: str | None):
    if value is None:
        return None
    import datetime as _dt

    try:
        t = _dt.datetime.fromisoformat(value)
    except ValueError:
        try:
            hm = _dt.datetime.strptime(value, "%H:%M").time()
        except ValueError:
            raise UserError(f"--start wants HH:MM or an ISO date-time, got {value!r}", exit_code=2) from None
        t = _dt.datetime.combine(_dt.date.today(), hm)
    return t if t.tzinfo else t.astimezone()


@app.command("estimate")
def estimate_cmd(
    images: Annotated[int | None, typer.Option("--images", help="Training images (one concept, balancing 1).")] = None,
    reg: Annotated[int | None, typer.Option("--reg", help="Regularisation images (a second concept).")] = None,
    balancing: Annotated[
        float | None,
        typer.Option(
            "--balancing",
            help="Balancing of the regularisation concept (default: computed so it gives --want samples).",
        ),
    ] = None,
    want: Annotated[
        int | None,
        typer.Option("--want", help="Regularisation samples wanted per epoch (default: as many as --images)."),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option("--strategy", help="Regularisation balancing strategy: repeats or samples.", case_sensitive=False),
    ] = "repeats",
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (default: from --config).")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Batch size (default: from --config, else 1).")
    ] = None,
    its: Annotated[float | None, typer.Option("--its", help="Training speed in it/s (steps per second).")] = None,
    from_smoke: Annotated[
        bool, typer.Option("--from-smoke", help="Use the last `otdoctor smoke` result (the default when one exists).")
    ] = False,
    gpu: Annotated[
        str | None, typer.Option("--gpu", help="GPU name: picks its smoke result, else a ROUGH reference speed.")
    ] = None,
    config: ConfigOption = None,
    ot_dir: OtDirOption = None,
    model: Annotated[
        str | None, typer.Option("--model", help="sdxl or sd15 (default: from --config, else sdxl).")
    ] = None,
    resolution: Annotated[
        str | None, typer.Option("--resolution", help="OneTrainer's resolution setting, e.g. 1024.")
    ] = None,
    sample_every: Annotated[
        float | None, typer.Option("--sample-every", help="Sampling interval (OneTrainer default 10 MINUTE).")
    ] = None,
    sample_unit: Annotated[
        str | None, typer.Option("--sample-unit", help="NEVER, EPOCH, STEP, SECOND, MINUTE, HOUR.")
    ] = None,
    save_every: Annotated[float | None, typer.Option("--save-every", help="Save interval (default NEVER).")] = None,
    save_unit: Annotated[
        str | None, typer.Option("--save-unit", help="NEVER, EPOCH, STEP, SECOND, MINUTE, HOUR.")
    ] = None,
    backup_every: Annotated[
        float | None, typer.Option("--backup-every", help="Backup interval (OneTrainer default 30 MINUTE).")
    ] = None,
    backup_unit: Annotated[
        str | None, typer.Option("--backup-unit", help="NEVER, EPOCH, STEP, SECOND, MINUTE, HOUR.")
    ] = None,
    load_s: Annotated[
        float | None, typer.Option("--load-s", help="Model load seconds (default: smoke result or rough).")
    ] = None,
    caching_rate: Annotated[
        float | None, typer.Option("--caching-rate", help="Latent caching, images per second.")
    ] = None,
    write_mbps: Annotated[float | None, typer.Option("--write-mbps", help="Disk write speed for saves, MB/s.")] = None,
    sample_s: Annotated[float | None, typer.Option("--sample-s", help="Seconds per sample image.")] = None,
    save_gb: Annotated[
        float | None,
        typer.Option("--save-gb", help="Size of one save in GB (default: from model and output dtype)."),
    ] = None,
    backup_before_save: Annotated[
        bool | None,
        typer.Option(
            "--backup-before-save/--no-backup-before-save",
            help="A backup before the final save (OneTrainer's default: on).",
        ),
    ] = None,
    latent_caching: Annotated[
        bool | None,
        typer.Option("--latent-caching/--no-latent-caching", help="Latent caching (default: from --config, else on)."),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="When the run starts (HH:MM or ISO; default now).")
    ] = None,
    from_log: Annotated[
        str | None,
        typer.Option(
            "--from-log", help="Read a running OneTrainer's output (a file, or - for stdin) and predict its finish."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json.", case_sensitive=False)] = "text",
) -> None:
    """How many steps a run has, and how long it will take.

    Steps use OneTrainer's exact arithmetic (REPEATS floor(images x balancing), SAMPLES
    int(balancing), aspect buckets dropping incomplete batches when --config gives image folders).
    Time = model load + latent caching + steps / it/s + sampling + saves and backups, with a range
    from the measured spread. Where the it/s comes from is always said.
    """
    import json

    from otdoctor.estimate import plan as planner
    from otdoctor.render import plan as plan_render

    fmt = fmt.lower()
    if fmt not in ("text", "json"):
        raise UserError(f"unknown --format {fmt!r}; choose text or json", exit_code=2)
    if config is not None and not config.is_file():
        raise UserError(f"config file not found: {config}", exit_code=2)
    if from_log is not None:
        if from_log == "-":
            text = sys.stdin.read()
        else:
            try:
                text = Path(from_log).read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise UserError(f"cannot read --from-log {from_log}: {exc.strerror or exc}", exit_code=2) from None
        final_s, _ = planner.final_overhead_s(config, ot_dir, model)
        out = planner.from_log(text, now=_clock_option(start), final_save_s=final_s)
        if fmt == "json":
            _write(redact(json.dumps(out.to_dict(), indent=1)) + "\n", None)
        else:
            plan_render.render_log(out)
        return
    req = planner.EstimateRequest(
        images=images,
        reg=reg,
        balancing=balancing,
        want=want,
        strategy=strategy,
        epochs=epochs,
        batch_size=batch_size,
        its=its,
        from_smoke=from_smoke,
        gpu=gpu,
        config=config,
        ot_dir=ot_dir,
        model=model,
        resolution=resolution,
        sample_every=sample_every,
        sample_unit=sample_unit,
        save_every=save_every,
        save_unit=save_unit,
        backup_every=backup_every,
        backup_unit=backup_unit,
        load_s=load_s,
        caching_rate=caching_rate,
        write_mbps=write_mbps,
        sample_s=sample_s,
        save_gb=save_gb,
        backup_before_save=backup_before_save,
        latent_caching=latent_caching,
        start=_clock_option(start),
    )
    out = planner.build(req)
    if fmt == "json":
        _write(redact(json.dumps(out.to_dict(), indent=1)) + "\n", None)
    else:
        plan_render.render_estimate(out)


# ---- config and dataset ------------------------------------------------------------------------


# ---- otdoctor report / merge -------------------------------------------------------------------
def _print_bundle(bundle) -> None:
    sys.stdout.write(bundle.markdown)
    for name, text in bundle.files.items():
        if name == "summary.md":
            continue
        sys.stdout.write(f"\n===== otdoctor-report/{name} =====\n{text}")
        if text and not text.endswith("\n"):
            sys.stdout.write("\n")
    sys.stdout.flush()


@app.command("report")
def report_cmd(
    ot_dir: OtDirOption = None,
    config: ConfigOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the zip here (default on a terminal, after you confirm: "
            "otdoctor-report-DATE.zip in the current folder).",
            dir_okay=False,
        ),
    ] = None,
    print_: Annotated[
        bool, typer.Option("--print", help="Show everything that would be shared (summary and every file) on stdout.")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="No network access at all; checks that need it are skipped.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Write without asking.")] = False,
) -> None:
    """A bug-report bundle: a Markdown summary to paste into a GitHub issue, and a zip to attach.

    The zip holds the full JSON check results, `pip freeze` of OneTrainer's venv, the NVML snapshot
    or `nvidia-smi -q`, the config with its concepts, and the install log. Everything is
    anonymised: the home folder becomes ~, user and host names are replaced, tokens (environment,
    secrets.json, Authorization headers, ?token= in URLs, Hugging Face and Civitai keys) are removed.
    Nothing is written until you have seen it: --print shows it all; on a terminal without --output
    you are shown the summary and asked.
    """
    from otdoctor.probe import Probe
    from otdoctor.render import human_bytes
    from otdoctor.report.bundle import collect, default_output

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status("Collecting the report…") as status:
            bundle = collect(
                Probe(), ot_dir, config, offline=offline, progress=lambda m: status.update(f"Report: {m}…")
            )
    else:
        bundle = collect(Probe(), ot_dir, config, offline=offline)

    if print_:
        _print_bundle(bundle)
        if output is None:
            return
    if output is None and not interactive:
        # Nobody to ask: show what would be shared and write nothing.
        _print_bundle(bundle)
        sys.stderr.write("otdoctor: nothing written; add --output FILE to save the zip\n")
        return
    if output is None:
        target = default_output()
        sys.stdout.write(bundle.markdown + "\nThe zip would hold:\n")
        for name, text in bundle.files.items():
            sys.stdout.write(f"  {name} ({human_bytes(len(text.encode()))})\n")
        while not yes:
            answer = typer.prompt(f"Write {target}? [y]es, [n]o, [s]how every file", default="n").strip().lower()
            if answer.startswith("s"):
                _print_bundle(bundle)
            elif answer.startswith("y"):
                break
            else:
                sys.stderr.write("otdoctor: nothing written\n")
                raise typer.Exit(1)
        output = target
    bundle.write(output)
    if not print_ and not interactive:
        sys.stdout.write(bundle.markdown)
    sys.stderr.write(
        f"otdoctor: wrote {output} ({human_bytes(output.stat().st_size)}, {len(bundle.files)} files). "
        "Paste the summary (summary.md) into the issue and attach the zip.\n"
    )


@app.command("merge")
def merge_cmd(
    reports: Annotated[
        list[Path],
        typer.Argument(help="JSON reports from `otdoctor check --format json` (or a report zip's checks.json)."),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, markdown or json.", case_sensitive=False)] = "text",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE.", dir_okay=False)] = None,
    all_checks: Annotated[
        bool, typer.Option("--all", help="Show every check column, not only those that differ or fail.")
    ] = False,
) -> None:
    """Combine per-machine reports into one table: machines as rows, checks as columns.

    Differences between machines (driver version, torch build, free VRAM, any check's verdict) are
    highlighted. Exit code 1 when any machine's report failed or could not be read.
    """
    from otdoctor.report import merge

    fmt = fmt.lower()
    if fmt not in ("text", "markdown", "json"):
        raise UserError(f"unknown --format {fmt!r}; choose one of text, markdown, json", exit_code=2)
    fleet = merge.load(reports)
    if fmt == "json":
        from otdoctor.render import jsonout

        _write(jsonout.dumps(merge.summary(fleet)), output)
    elif fmt == "markdown":
        from otdoctor.render import merge_table

        _write(redact(merge_table.markdown(fleet, all_checks)), output)
    else:
        from otdoctor.render import merge_table

        merge_table.text(fleet, _out_console(output), all_checks)
    raise typer.Exit(fleet.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: map errors and Ctrl-C to one line and an exit code."""
    register_env_secrets()
    try:
        rv = app(args=argv, prog_name="otdoctor", standalone_mode=False)
    except UserError as exc:
        sys.stderr.write(redact(f"otdoctor: error: {exc.message}") + "\n")
        if exc.hint:
            sys.stderr.write(redact(f"  {exc.hint}") + "\n")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("\notdoctor: interrupted\n")
        sys.exit(130)
    except TyperException as exc:  # usage errors: bad option, missing argument
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            sys.stderr.write(f"otdoctor: error: {exc}\n")
        sys.exit(getattr(exc, "exit_code", 2))
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        if os.environ.get("OTDOCTOR_DEBUG"):
            raise
        sys.stderr.write(redact(f"otdoctor: internal error: {type(exc).__name__}: {exc}") + "\n")
        sys.stderr.write("  run again with OTDOCTOR_DEBUG=1 to see the traceback, and please report it\n")
        sys.exit(1)
    if rv == 130:  # typer itself turns Ctrl-C inside a command into Exit(130), without a word
        sys.stderr.write("\notdoctor: interrupted\n")
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
