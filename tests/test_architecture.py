"""The module picture: no import cycle among slp_lightning's modules (type-only and function-level
imports included), and the maths below the Lightning glue."""

import ast
import re
from pathlib import Path

import slp_lightning

PACKAGE = Path(slp_lightning.__file__).parent
# The floors of the package, lowest first: a module imports its own floor or a lower one only. The
# first five are plain PyTorch: none of them may import Lightning, directly or through another.
LAYERS = [
    ("the base", ["slp_lightning.errors"]),
    ("the maths and the data it reads", ["slp_lightning.maths", "slp_lightning.data"]),
    ("the extension points", ["slp_lightning.networks", "slp_lightning.methods", "slp_lightning.defences",
                              "slp_lightning.objectives"]),
    ("the inversion, the attack and the visualisation", ["slp_lightning.inversion"]),
    ("outputs and reports", ["slp_lightning.outputs"]),
    ("the Lightning module, its callbacks and data", ["slp_lightning.module", "slp_lightning.callbacks",
                                                      "slp_lightning.data.targets"]),
    ("running: one run, sweeps, chunks, devices", ["slp_lightning.running"]),
    ("the command line", ["slp_lightning.cli", "slp_lightning.__main__"]),
]  # fmt: skip
PLAIN_TORCH = 5  # the first layers that never load Lightning


def layer_of(module: str) -> int | None:
    """The floor of a module of slp_lightning (the longest prefix that names one)."""
    found = [(len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
             if module == p or module.startswith(p + ".")]  # fmt: skip
    return max(found)[1] if found else None


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


def test_every_module_has_a_floor_and_no_import_runs_up() -> None:
    graph = imports()
    modules = [n for n in graph if n != "slp_lightning"]
    assert [n for n in modules if layer_of(n) is None] == []
    upward = [
        f"{n} ({LAYERS[layer_of(n)][0]}) imports {i} ({LAYERS[layer_of(i)][0]})"
        for n in modules
        for i in graph[n]
        if i.startswith("slp_lightning.") and layer_of(i) is not None and layer_of(i) > layer_of(n)
    ]
    assert upward == []


def test_the_plain_torch_floors_import_no_lightning() -> None:
    graph = imports()
    plain = [n for n in graph if n != "slp_lightning" and layer_of(n) < PLAIN_TORCH]
    assert len(plain) > 30 and [n for n in plain if "lightning" in reachable(graph, n)] == []


def test_the_layout_table_names_every_module() -> None:
    """Each module of the package is in the development page's layout table, by its folder and
    file (``folder/`` then bare ``x.py`` of that folder, or ``folder/x.py``), and each named exists."""
    page = (PACKAGE.parent / "docs" / "development.md").read_text()
    table = page.split("| floor | folder | what |", 1)[1].split("\n\n", 1)[0]
    named = set()
    for row in table.splitlines()[2:]:
        _, floor, folders, what, _ = row.split("|")
        for folder in re.findall(r"`(slp_lightning/[\w/.]*)`", folders):
            if folder.endswith(".py"):
                named.add(folder)
                continue
            base = folder.rstrip("/")
            for name in re.findall(r"`(\w+\.py)`", what):
                if (PACKAGE.parent / base / name).exists():
                    named.add(f"{base}/{name}")
            if base in {
                "slp_lightning/networks",
                "slp_lightning/methods",
                "slp_lightning/defences",
                "slp_lightning/objectives",
                "slp_lightning/callbacks",
            }:
                named |= {
                    str(p.relative_to(PACKAGE.parent)) for p in (PACKAGE.parent / base).glob("*.py")
                }
    modules = {
        str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" and p.name != "__main__.py"
    }  # fmt: skip
    assert sorted(modules - named) == []
    assert sorted(n for n in named if not (PACKAGE.parent / n).exists()) == []
