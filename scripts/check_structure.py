"""The structure rules of docs/architecture.md, checked: run by scripts/test.sh beside ruff and mypy.

- Layers point one way: a module imports only from its own layer or the layers below it
  (imports under `if TYPE_CHECKING:` are for annotations and do not count).
- Only `otdoctor/probe/` starts processes, asks psutil or calls NVML; only `cli/` and `render/`
  import typer or rich; a check never reads `os.environ` or `sys.argv`.
- Packaging: every package under `otdoctor/` is listed in pyproject.toml, so `pip install .`
  (a wheel, not the editable install the tests use) ships it.
- Size: no module over 400 lines, no function over 60 lines or cyclomatic complexity over 15
  (radon's measure) in `otdoctor/` and `checks/`.

Exit 0 when every rule holds, else 1 with one line per breach: `path:line: what`.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_COMPLEXITY = 15

# Lower layers first. A module's layer is the longest prefix of its dotted name listed here.
LAYERS: dict[str, int] = {
    "otdoctor": 0,  # the package itself (__version__)
    "otdoctor.errors": 0,
    "otdoctor.redact": 0,
    "otdoctor.oneline": 0,  # strings from the machine made printable on one line, for every output
    "otdoctor.data": 0,
    "otdoctor.probe": 1,
    "otdoctor.render.units": 1,  # pure number formatting, used by check sentences
    "otdoctor.engine.results": 1,  # the results model every layer hands upwards
    "otdoctor.engine.check": 1,  # the check object checks subclass
    "otdoctor.onetrainer": 2,
    "otdoctor.install": 3,
    "otdoctor.checkpoints": 3,
    "otdoctor.smoke": 3,
    "otdoctor.estimate": 3,
    "otdoctor.dataset": 3,
    "otdoctor.report": 3,
    "otdoctor.explain": 3,
    "otdoctor.gpu": 3,
    "otdoctor.vram": 3,
    "otdoctor.checks": 4,
    "otdoctor.engine": 5,
    "otdoctor.render": 6,
    # Jobs: a whole command composed of the engine and renderers. `install` runs the checks before
    # and after it installs; a report bundle holds the check report as JSON and Markdown.
    "otdoctor.install.run": 6,
    "otdoctor.install.installer": 6,
    "otdoctor.install.preflight": 6,
    "otdoctor.report.bundle": 6,
    "otdoctor.cli": 7,
}
# Scripts run by other interpreters (the user's venv): they import nothing of otdoctor.
STANDALONE = {"otdoctor/probe/interpreter_script.py", "otdoctor/smoke/synthetic_train.py"}
MACHINE_MODULES = {"subprocess", "psutil", "pynvml"}
UI_MODULES = {"typer", "rich", "click"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "checks":
        parts = ["otdoctor", "checks", *parts[1:]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(name: str) -> int | None:
    best = None
    for prefix in LAYERS:
        if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else LAYERS[best]


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:`."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports(tree: ast.Module, package: str) -> Iterator[tuple[int, str]]:
    skip = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}" if base.startswith("otdoctor") else base


def _reads_environment(tree: ast.Module) -> Iterator[int]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in {("os", "environ"), ("sys", "argv"), ("os", "getenv")}
        ):
            yield node.lineno


def check_imports(path: Path, tree: ast.Module) -> Iterator[str]:
    rel = path.relative_to(ROOT).as_posix()
    name = module_name(path)
    own = layer_of(name)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for line, target in imports(tree, package):
        top = target.split(".")[0]
        if top in MACHINE_MODULES and not rel.startswith("otdoctor/probe/") and rel not in STANDALONE:
            yield f"{rel}:{line}: imports {top}: only otdoctor/probe/ touches the machine"
        if top in UI_MODULES and not rel.startswith(("otdoctor/cli/", "otdoctor/render/")):
            yield f"{rel}:{line}: imports {top}: only cli/ and render/ draw"
        if top == "otdoctor" and own is not None:
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                yield f"{rel}:{line}: imports {target} from a higher layer (layers point one way)"
    if rel.startswith("checks/"):
        for line in _reads_environment(tree):
            yield f"{rel}:{line}: a check reads the environment: ask ctx.probe.env or ctx.options"


def check_sizes(path: Path, source: str) -> Iterator[str]:
    rel = path.relative_to(ROOT).as_posix()
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        yield f"{rel}:1: module has {lines} lines (at most {MAX_MODULE_LINES})"
    for block in cc_visit(source):
        functions = list(getattr(block, "methods", [])) if hasattr(block, "methods") else [block]
        for fn in functions:
            length = fn.endline - fn.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield f"{rel}:{fn.lineno}: {fn.name} has {length} lines (at most {MAX_FUNCTION_LINES})"
            if fn.complexity > MAX_COMPLEXITY:
                yield f"{rel}:{fn.lineno}: {fn.name} has complexity {fn.complexity} (at most {MAX_COMPLEXITY})"


def check_packaging() -> Iterator[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    for init in sorted((ROOT / "otdoctor").rglob("__init__.py")):
        name = ".".join(init.parent.relative_to(ROOT).parts)
        if name not in listed:
            yield f"pyproject.toml:1: package {name} is not in [tool.setuptools] packages: a wheel would lack it"


def main() -> int:
    breaches: list[str] = list(check_packaging())
    for folder in ("otdoctor", "checks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
            if path.relative_to(ROOT).as_posix() not in STANDALONE:
                breaches += check_imports(path, tree)
            breaches += check_sizes(path, source)
    for line in breaches:
        print(line)
    print(f"structure: {len(breaches)} breach(es)" if breaches else "structure: every rule holds")
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
