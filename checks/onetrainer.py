"""The OneTrainer checkout: found, a git checkout of OneTrainer, its commit and local changes."""

from __future__ import annotations

import shlex

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.onetrainer.checkout import LAUNCHERS, looks_like_onetrainer
from otdoctor.probe.files import denied


class CheckoutFound(Check):
    id = "onetrainer.checkout"
    title = "OneTrainer checkout"
    area = "onetrainer"

    def diagnose(self, ctx: Context) -> CheckResult:
        opts = ctx.options
        refused = opts.extra.get("ot_dir_unreadable")
        if refused:
            # --ot-dir/OT_DIR name a checkout; the guide's places (~/OneTrainer) are where one usually is.
            named = "named by" if opts.ot_dir_source in ("--ot-dir", "OT_DIR") else "at"
            return CheckResult.fail(
                f"{denied(refused)}, on the way to the checkout {named} {opts.ot_dir_source}",
                expected="a OneTrainer checkout you can read (and write: training writes into it)",
                why="every other check looks at OneTrainer's Python, venv and config",
                fix=Fix(
                    "use your own checkout, or ask its owner to let you in (it belongs to another user or lost its "
                    "permissions)",
                    (f"ls -ld {shlex.quote(refused)}",),
                ),
            )
        if opts.ot_dir is None:
            tried = opts.extra.get("ot_dir_tried", ())
            # Not installed yet is a warning (the machine is not broken); --strict makes it fail.
            return CheckResult.warn(
                "OneTrainer is not installed (no checkout found)",
                blocks_dependents=True,
                expected="a OneTrainer checkout (scripts/train.py and its launchers)",
                why="every other check looks at OneTrainer's Python, venv and config",
                details=tuple(f"looked in {p}" for p in tried),
                fix=Fix(
                    "install OneTrainer, or point otdoctor at your checkout",
                    ("otdoctor install", "otdoctor check --ot-dir /path/to/OneTrainer"),
                ),
            )
        path = opts.ot_dir
        if not path.is_dir():
            return CheckResult.fail(
                f"{path} (from {opts.ot_dir_source}) does not exist",
                expected="the folder of a OneTrainer checkout",
                why="every other check looks at OneTrainer's Python, venv and config",
                fix=Fix("correct the path, or install OneTrainer there", (f"otdoctor install --dir {path}",)),
            )
        if not looks_like_onetrainer(path):
            present = [n for n in LAUNCHERS if (path / n).is_file()]
            return CheckResult.fail(
                f"{path} (from {opts.ot_dir_source}) is not a OneTrainer checkout",
                expected="scripts/train.py and the launchers " + ", ".join(LAUNCHERS),
                why="otdoctor reads OneTrainer's launchers and requirements from the checkout",
                details=(f"launchers present: {', '.join(present) or 'none'}",),
                fix=Fix(
                    "point otdoctor at the folder you cloned OneTrainer into",
                    ("otdoctor check --ot-dir /path/to/OneTrainer",),
                ),
            )
        return CheckResult.ok(
            f"{path} (from {opts.ot_dir_source})", data={"path": str(path), "source": opts.ot_dir_source}
        )


class CheckoutGit(Check):
    id = "onetrainer.git"
    title = "OneTrainer git state"
    area = "onetrainer"
    required = False
    requires = ("onetrainer.checkout",)

    def diagnose(self, ctx: Context) -> CheckResult:
        path = ctx.ot_dir
        assert path is not None
        head = ctx.probe.git(path, "rev-parse", "HEAD")
        if head.missing:
            return CheckResult.warn(
                "git is not installed, so the checkout's commit is unknown",
                why="OneTrainer's installer and updater need git (editable dependencies are cloned)",
                fix=Fix("install git", ("sudo apt install git",)),
            )
        if not head.ok:
            return CheckResult.warn(
                f"{path} is not a git checkout ({head.describe_failure()})",
                expected="a `git clone` of OneTrainer",
                why="update.sh runs `git pull`; without git history OneTrainer cannot update itself",
                fix=Fix("clone OneTrainer with git", ("otdoctor install",)),
            )
        commit = head.stdout.strip()
        branch = ctx.probe.git(path, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip() or None
        describe = ctx.probe.git(path, "log", "-1", "--format=%cs %s").stdout.strip()
        status = ctx.probe.git(path, "status", "--porcelain", "--untracked-files=no")
        changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
        data = {"commit": commit, "branch": branch, "changed_files": changed, "last_commit": describe}
        summary = f"{commit[:10]} on {branch or 'a detached HEAD'} ({describe})"
        if changed:
            return CheckResult.warn(
                f"{summary}; {len(changed)} tracked file(s) changed locally",
                expected="a clean checkout",
                why="local edits make `git pull` in update.sh fail or behave differently from upstream",
                details=tuple(changed[:10]) + ((f"... and {len(changed) - 10} more",) if len(changed) > 10 else ()),
                fix=Fix("keep your edits aside before updating", (f"git -C {path} stash",)),
                data=data,
            )
        return CheckResult.ok(summary, data=data)


CHECKS = [CheckoutFound, CheckoutGit]
