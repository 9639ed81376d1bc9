"""Package structure: no function over 80 lines, no import cycle, ``py.typed`` shipped.

Function length: a ``def`` counts from its first decorator (or ``def``) line to its last line,
less the lines of its docstring (the house style asks for Google docstrings with every
parameter and executed examples; documentation is not what makes a function hard to follow).
No exemptions.

Import cycles: the graph has one node per module of ``nnunet_ext`` and an edge for every
``import``/``from ... import`` of another ``nnunet_ext`` module anywhere in the file, inside
functions included (a function-level import still couples the two modules; it only delays the
error). ``from package import name`` counts as an import of ``package`` and, when ``name`` is a
submodule, of that submodule. ``if TYPE_CHECKING:`` imports are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nnunet_ext"
MAX_LINES = 80


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def long_functions() -> list[str]:
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = (node.end_lineno or node.lineno) - first + 1
                body = node.body[0]
                if (
                    isinstance(body, ast.Expr)
                    and isinstance(body.value, ast.Constant)
                    and isinstance(body.value.value, str)
                ):
                    lines -= (body.end_lineno or body.lineno) - body.lineno + 1
                if lines > MAX_LINES:
                    found.append(f"{name}.{node.name} ({path.name}:{node.lineno}): {lines} lines")
    return found


def test_no_function_is_over_80_lines():
    assert long_functions() == []


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node)
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


def import_graph() -> dict[str, set[str]]:
    return {name: _imports(name, path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    """A package ``__init__`` importing its own submodules is not a cycle by itself; an edge
    from a submodule back to its package ``__init__`` that re-exports it would be."""
    assert find_cycle(import_graph()) is None


def test_py_typed_is_shipped():
    assert (PACKAGE / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"nnunet_ext/py.typed"' in pyproject or 'packages = ["nnunet_ext"]' in pyproject


# --- layers, module size, lazy imports (issue 24) ---------------------------------------------

MAX_MODULE_LINES = 500
#: The shared layers every feature builds on; they never import a feature.
SHARED = ("io", "_cli", "_cli_vocabulary", "_parallel", "_ray", "_workers", "_stats", "synthetic")
#: Packages of the package root that are not features (the umbrella CLI, metadata).
ROOT_MODULES = ("", "cli", "__main__", "_pth")
#: What a function may import lazily, and why. The issue's list (torch, nnU-Net, Ray,
#: SimpleITK, matplotlib: heavy, or optional extras), our torch rooms (``<feature>/engine.py``,
#: ``trainers/``) and, in ``cli.py`` modules only, our own feature modules (``--help`` stays
#: under 0.5 s). Beyond the issue's list, measured here: scipy (0.3-0.5 s) and blosc2 (0.4 s)
#: would double every command's start-up; cc3d, fill_voids and nibabel load only in the
#: functions that need them (the postprocess package promises numpy alone on import); isal is
#: optional (a zlib fallback); tqdm adds 70 ms to every start-up; fcntl is POSIX-only;
#: importlib.metadata (47 ms) only looks up versions.
LAZY_ALLOWED = (
    *("torch", "nnunetv2", "ray", "SimpleITK", "matplotlib"),
    *("scipy", "blosc2", "cc3d", "fill_voids", "nibabel", "isal", "tqdm", "fcntl"),
    "importlib.metadata",
)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _top_imports(path: Path) -> list[tuple[ast.ImportFrom | ast.Import, bool]]:
    """Every import of a file and whether it sits inside a function."""
    tree = ast.parse(path.read_text(), str(path))
    inner = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.walk(node)
    }
    return [
        (node, id(node) in inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]


def test_shared_layers_never_import_a_feature():
    graph = import_graph()
    wrong = [
        f"{name} -> {target}"
        for name, targets in graph.items()
        if _package(name) in SHARED
        for target in targets
        if _package(target) not in (*SHARED, *ROOT_MODULES) and target != "nnunet_ext"
    ]
    assert wrong == []


def test_predict_and_export_share_code_only_through_io():
    graph = import_graph()
    wrong = [
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if {_package(name), _package(target)} == {"predict", "export"}
    ]
    assert wrong == []


def test_no_private_name_is_imported_across_packages():
    wrong = []
    for name, path in MODULES.items():
        for node, _ in _top_imports(path):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "nnunet_ext"
            ):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                shared = alias.name in SHARED  # the shared layer modules themselves
                if private and not shared and _package(node.module or "") != _package(name):
                    wrong.append(f"{name}: from {node.module} import {alias.name}")
    assert wrong == []


def _lazy_violations() -> list[str]:
    wrong = []
    for name, path in MODULES.items():
        for node, inside in _top_imports(path):
            if not inside:
                continue
            targets = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for target in targets:
                if target.split(".")[0] in LAZY_ALLOWED or target in LAZY_ALLOWED:
                    continue
                if target.startswith("nnunet_ext") and path.name in ("cli.py", "__main__.py"):
                    continue
                if target.endswith(".engine") or target.startswith("nnunet_ext.trainers"):
                    continue  # our torch rooms: imported when a network is loaded
                wrong.append(f"{name}:{node.lineno}: {target}")
    return wrong


def test_no_module_is_over_500_lines():
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_our_own_modules_are_imported_at_the_top():
    """Lazy imports hide the data flow; only :data:`LAZY_ALLOWED` may be lazy (and our own
    modules in ``cli.py``, for the start-up time of ``--help``)."""
    assert _lazy_violations() == []
