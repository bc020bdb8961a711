"""No import cycle among the product's modules (airline_local/, stacks/, glue_scripts/).

Read from the source with ast: every import counts, the ones inside functions too, because a lazy
import that closes a cycle only moves the failure to whichever module happens to be imported
first (airline_local/aws/moto_patches.py and distributed_map.py imported each other that way, before
airline_local/aws/patches/).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("airline_local", "stacks", "glue_scripts")


def product_modules(root: Path = ROOT) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The product modules `module` imports (a name imported from a package counts as its submodule
    when there is one, else as the package)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(known(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else known(base))
    found.discard(None)
    found.discard(module)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_products_modules_import_each_other_without_a_cycle():
    modules = product_modules()
    assert "airline_local.aws.patches.registry" in modules  # the walk found the product
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert import_cycles(graph) == []


def test_a_lazy_import_back_is_a_cycle(tmp_path):
    """The shape of the old cycle: a top-level import one way, a function-level import back."""
    package = tmp_path / "airline_local"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "patches.py").write_text("from airline_local import feature\n")
    (package / "feature.py").write_text("def patch():\n    from airline_local.patches import replace\n")
    (package / "other.py").write_text("from . import feature\n")
    for name in ("stacks", "glue_scripts"):
        (tmp_path / name).mkdir()
    modules = product_modules(tmp_path)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph["airline_local.other"] == {"airline_local.feature"}
    assert import_cycles(graph) == [["airline_local.feature", "airline_local.patches"]]
