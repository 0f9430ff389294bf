"""What the venv checks share: the checkout's venv facts, and the commands their fixes show."""

from __future__ import annotations

import shlex
from pathlib import Path

from otdoctor.engine.check import Context
from otdoctor.onetrainer.platforms import GLOBAL_REQUIREMENTS, PlatformChoice, choose_requirements
from otdoctor.onetrainer.python_range import python_data
from otdoctor.onetrainer.venv_facts import VenvFacts, venv_facts


def checkout_venv(ctx: Context) -> VenvFacts:
    facts = venv_facts(ctx)
    assert facts is not None  # onetrainer.checkout passed, so there is a checkout
    return facts


def relative(ctx: Context, path: Path) -> str:
    """The venv as the user would type it from the checkout (`venv`, or an absolute path)."""
    try:
        return str(path.relative_to(ctx.ot_dir)) if ctx.ot_dir else str(path)
    except ValueError:
        return str(path)


def q(text: str) -> str:
    return shlex.quote(text)


def recreate(ctx: Context, facts: VenvFacts) -> tuple[str, ...]:
    guide = python_data()["guide_version"]
    return (
        f"cd {q(str(ctx.ot_dir))}",
        f"rm -rf {q(relative(ctx, facts.path))}",
        f"pyenv local {guide}",
        "./install.sh",
    )


def pip_command(ctx: Context, facts: VenvFacts) -> str:
    return f"{q(relative(ctx, facts.path))}/bin/python -m pip"


def platform_choice(ctx: Context) -> PlatformChoice:
    return ctx.memo("platform", lambda: choose_requirements(ctx.probe, ctx.ot_dir))


def install_commands(ctx: Context, facts: VenvFacts) -> tuple[str, ...]:
    """What the launcher runs to install requirements (`install_requirements_in_active_env`)."""
    choice = platform_choice(ctx)
    return (
        f"cd {q(str(ctx.ot_dir))}",
        f"{pip_command(ctx, facts)} install --upgrade --upgrade-strategy eager "
        f"-r {GLOBAL_REQUIREMENTS} -r {q(choice.file)}",
    )
