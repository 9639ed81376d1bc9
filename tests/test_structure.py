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
