"""The checkout phase: clone (as init + fetch, so an interrupted fetch is simply repeated), switch to
`--ref`, and never clobber local changes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from otdoctor.errors import UserError
from otdoctor.install.session import PhaseFailed, quote
from otdoctor.install.state import LOG_NAME, STATE_NAME
from otdoctor.onetrainer import checkout as ot_checkout
from otdoctor.probe import Probe

if TYPE_CHECKING:
    from otdoctor.install.installer import Installer

# What the checkout's .git/info/exclude gets: otdoctor's own files stay out of `git status`.
EXCLUDES = (LOG_NAME, STATE_NAME, "*.otdoctor-old-*")


def nothing_fetched(probe: Probe, ot_dir: Path) -> bool:
    """A clone that never got a commit (say a mistyped --repo-url): its origin may be replaced."""
    if probe.git(ot_dir, "rev-parse", "--verify", "-q", "HEAD").ok:
        return False
    refs = probe.git(ot_dir, "for-each-ref")
    return refs.ok and not refs.stdout.strip()


def checkout_problem(inst: Installer) -> str | None:
    if not (inst.dir / ".git").exists():
        return "not cloned yet"
    head = inst.probe.git(inst.dir, "rev-parse", "--verify", "-q", "HEAD")
    if not head.ok:
        return "the clone did not finish (no commit checked out)"
    if not ot_checkout.looks_like_onetrainer(inst.dir):
        return "the checkout has no OneTrainer launchers"
    ref = inst.opts.ref
    if ref:
        want = inst.probe.git(inst.dir, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        if not want.ok:
            want = inst.probe.git(inst.dir, "rev-parse", "--verify", "-q", f"origin/{ref}^{{commit}}")
        if not want.ok or want.stdout.strip() != head.stdout.strip():
            return f"HEAD is not {ref}"
    return None


def checkout_commands(inst: Installer) -> list[str]:
    """The checkout phase as shell commands, for the plan."""
    cmds = []
    if not (inst.dir / ".git").exists():
        cmds.append(f"git clone {quote([inst.repo_url, inst.dir])}")
    else:
        cmds.append(f"git -C {quote([inst.dir])} fetch origin")
    if inst.opts.ref:
        cmds.append(f"git -C {quote([inst.dir])} checkout {quote([inst.opts.ref])}")
    return cmds


def short_head(inst: Installer) -> str:
    return inst.probe.git(inst.dir, "rev-parse", "--short", "HEAD").stdout.strip()


def do_checkout(inst: Installer) -> None:
    if checkout_problem(inst) is None:
        reused = short_head(inst)
        inst.save_phase("checkout", commit=reused)
        inst.ui.done("checkout", f"reusing {inst.dir} at {reused}")
        return
    git = ["git", "-C", str(inst.dir)]
    if not (inst.dir / ".git").exists():
        # init + fetch instead of `git clone`: works in a folder that already holds our log, and
        # an interrupted fetch is simply repeated.
        inst.dir.mkdir(parents=True, exist_ok=True)
        inst.session.log()  # the log lives in the checkout from the first moment
        inst.session.run("checkout", [*git, "init", "-q"])
    _exclude_own_files(inst.dir)
    head = inst.probe.git(inst.dir, "rev-parse", "--verify", "-q", "HEAD")
    if head.ok and inst.opts.ref:
        _refuse_local_changes(inst, inst.opts.ref)
    remotes = inst.probe.git(inst.dir, "remote").stdout.split()
    if "origin" not in remotes:
        inst.session.run("checkout", [*git, "remote", "add", "origin", inst.repo_url])
    elif nothing_fetched(inst.probe, inst.dir):  # the earlier try's --repo-url was wrong: use this one
        inst.session.run("checkout", [*git, "remote", "set-url", "origin", inst.repo_url])
    inst.session.run("checkout", [*git, "fetch", "--tags", "--progress", "origin"], what="git fetch origin")
    if not head.ok or inst.opts.ref:
        _switch(inst, git, inst.opts.ref or _remote_default_branch(inst))
    problem = checkout_problem(inst)
    if problem:
        raise PhaseFailed("checkout", problem, (), inst.log_path)
    head_s = short_head(inst)
    inst.save_phase("checkout", commit=head_s)
    inst.ui.done("checkout", f"{inst.dir} at {head_s}")


def _exclude_own_files(ot_dir: Path) -> None:
    exclude = ot_dir / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text() if exclude.is_file() else ""
    if LOG_NAME not in text:
        exclude.write_text(text + "\n" + "\n".join(EXCLUDES) + "\n")


def _refuse_local_changes(inst: Installer, ref: str) -> None:
    status = inst.probe.git(inst.dir, "status", "--porcelain", "--untracked-files=no").stdout.split("\n")
    changed = [c[3:] for c in status if c.strip()]
    if changed:
        raise UserError(
            f"{inst.dir} has local changes ({', '.join(changed[:5])}); switching to {ref} could lose them",
            hint=f"commit or stash them (git -C {inst.dir} stash), or run without --ref",
        )


def _switch(inst: Installer, git: list[str], target: str) -> None:
    if inst.probe.git(inst.dir, "rev-parse", "--verify", "-q", f"refs/remotes/origin/{target}").ok:
        inst.session.run("checkout", [*git, "checkout", "-q", "-B", target, "--track", f"origin/{target}"])
        return
    if not inst.probe.git(inst.dir, "rev-parse", "--verify", "-q", f"{target}^{{commit}}").ok:
        raise UserError(f"--ref {target} is neither a branch, a tag nor a commit of {inst.repo_url}")
    inst.session.run("checkout", [*git, "checkout", "-q", "--detach", target])


def _remote_default_branch(inst: Installer) -> str:
    res = inst.probe.git(inst.dir, "ls-remote", "--symref", "origin", "HEAD", timeout_s=60)
    m = re.search(r"ref:\s+refs/heads/(\S+)\s+HEAD", res.stdout)
    return m.group(1) if m else "master"
