"""The module picture: no import cycle among slp_lightning's modules (type-only and function-level
imports included), and the maths below the Lightning glue."""

import ast
from pathlib import Path

import slp_lightning

PACKAGE = Path(slp_lightning.__file__).parent
# Plain PyTorch: none of these may import Lightning, directly or through another module.
MATHS = [
    "pyramid",
    "objective",
    "metrics",
    "methods",
    "schedule",
    "torch_model",
    "n_f",
    "images",
    "networks",
    "defences",
    "threat",
    "utility",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every import in each module of slp_lightning: the names of the modules (``lightning``
    for any of Lightning's)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[module_name(path)] = {
            "lightning" if i.split(".")[0] == "lightning" else i for i in found
        }
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), set()) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_module_imports_itself_through_others() -> None:
    # A package's __init__ imports its own modules (``from slp_lightning.networks import dsift``),
    # and a module naming its own package reaches a sibling: neither is a cycle.
    graph = {
        n: {i for i in found if not (n + ".").startswith(i + ".")} for n, found in imports().items()
    }
    assert sorted(name for name in graph if name in reachable(graph, name)) == []


def test_the_maths_imports_no_lightning() -> None:
    graph = imports()
    maths = [n for n in graph if n.count(".") and n.split(".")[1] in MATHS]
    assert len(maths) > 20 and [n for n in maths if "lightning" in reachable(graph, n)] == []


def test_the_readme_module_table_names_every_module() -> None:
    """Each module of the package is in the README's table of pieces and modules, and each module
    the table names exists (``dir/x.py`` first in a cell, then bare ``y.py`` of the same folder)."""
    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme.split("| piece | module |", 1)[1].split("\n\n", 1)[0]
    named = set()
    for row in table.splitlines()[2:]:
        folder = ""
        for token in row.rsplit("|", 2)[1].replace("`", "").replace(",", " ").split():
            if "/" in token:
                folder = token.rsplit("/", 1)[0]
            named |= {
                str(p.relative_to(PACKAGE.parent))
                for p in PACKAGE.parent.glob(f"{folder}/{token.rsplit('/', 1)[-1]}")
            }
            assert list(PACKAGE.parent.glob(f"{folder}/{token.rsplit('/', 1)[-1]}")), token
    modules = {
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py") or p.parent.name == "networks"
    }
    assert sorted(modules - named) == []
