"""The rooms of the house import only rooms below them (see the map in README.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pixelsmith

ROOT = Path(pixelsmith.__file__).parent
# The rooms in order, each importing only rooms below it (directly or lazily in a function).
LADDER = (
    "utils", "data", "nn", "models", "generate", "metrics", "edit", "faces", "robust", "provenance",
    "forensics", "jobs", "deploy", "serve", "cli", "api",
)  # fmt: skip


def _above(room: str) -> set[str]:
    return set(LADDER[LADDER.index(room) + 1 :])


# room -> the rooms it must never import. Two rooms stand beside the ladder: train may import
# what metrics may, and only cli and api import it; zoo (checkpoint files and their index)
# imports models and utils alone, and nothing below generate imports it.
FORBIDDEN = {room: _above(room) | {"train"} for room in LADDER[: LADDER.index("serve") + 1]}
for _room in ("utils", "data", "nn", "models"):
    FORBIDDEN[_room] |= {"zoo"}
FORBIDDEN["train"] = _above("metrics")
FORBIDDEN["zoo"] = _above("models") | {"data", "nn", "train"}


def _imports(path: Path) -> set[str]:
    """The pixelsmith rooms a module imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "pixelsmith" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_lower_rooms_never_import_higher_ones():
    bad = []
    for room, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / room).rglob("*.py")):
            hit = _imports(path) & forbidden
            if hit:
                bad.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(hit))}")
    assert not bad, "\n".join(bad)


def test_no_caller_probes_a_model_for_what_it_can_do():
    # The contract declares abilities, options and classes; nothing asks a model's signature
    # or attributes (`inspect.signature(model.sample)`, `getattr(model, "classes", 0)`).
    probe = re.compile(r"(signature|getattr|hasattr)\((inspect\.)?(self\.)?(model|family)\b")
    probes = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if probe.search(p.read_text())]
    assert not probes, probes


def _module_graph() -> dict[str, set[str]]:
    """pixelsmith module -> the pixelsmith modules it imports anywhere in its body (lazily in a
    function too), leaving out imports made only for type checkers."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        found = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                wanted = [f"{node.module}.{a.name}" for a in node.names]
                found |= {resolve(w if w in modules else node.module) for w in wanted}
            elif isinstance(node, ast.Import):
                found |= {resolve(a.name) for a in node.names}
        graph[name] = {m for m in found if m and m.startswith("pixelsmith") and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_anywhere_not_even_through_lazy_imports():
    cycles = _cycles(_module_graph())
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_circle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
