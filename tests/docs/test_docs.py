"""The documentation stays true: docs/checks.md is what `otdoctor check --list` prints, every
relative link in README.md and docs/ reaches a file (and a heading, when it names one), and the
README stays a short front page."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted([README, *(REPO / "docs").rglob("*.md")])
README_LIMIT_BYTES = 12 * 1024

FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _generator():
    spec = importlib.util.spec_from_file_location("gen_checks_md", REPO / "scripts" / "gen_checks_md.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(text: str) -> str:
    """The text outside code blocks and code spans, where a `[x](y)` is a real link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8")))}


def _relative_links(page: Path) -> list[str]:
    targets = LINK.findall(_prose(page.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto:


def test_checks_page_is_what_check_list_prints(run_cli):
    proc = run_cli("check", "--list")
    assert proc.returncode == 0, proc.stderr
    expected = _generator().render_markdown(proc.stdout)
    current = (REPO / "docs" / "checks.md").read_text(encoding="utf-8")
    assert current == expected, "docs/checks.md is out of date: run python scripts/gen_checks_md.py"


def test_checks_page_lists_every_check_once(run_cli):
    ids = [line.split()[0] for line in run_cli("check", "--list").stdout.splitlines()[1:] if line.strip()]
    page = (REPO / "docs" / "checks.md").read_text(encoding="utf-8")
    assert ids and all(page.count(f"| `{check_id}` |") == 1 for check_id in ids)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_reach_a_file_and_heading(page: Path):
    broken = []
    for target in _relative_links(page):
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_every_docs_page_is_reachable_from_the_readme():
    seen: set[Path] = set()
    todo = [README.resolve()]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for target in _relative_links(page):
            dest = (page.parent / target.partition("#")[0]).resolve()
            if dest.suffix == ".md" and dest.exists():
                todo.append(dest)
    unreachable = [str(p.relative_to(REPO)) for p in PAGES if p.resolve() not in seen]
    assert not unreachable


def test_readme_is_a_short_front_page_with_the_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= README_LIMIT_BYTES
    blocks = re.findall(r"```shell\n(.*?)```", text, re.DOTALL)
    assert blocks[:2] == [
        "python3 -m venv ~/.otdoctor && ~/.otdoctor/bin/pip install . && ~/.otdoctor/bin/otdoctor check\n",
        "bash scripts/test.sh\n",
    ]
