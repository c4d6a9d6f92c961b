"""The rooms of the house import only rooms below them (see the map in README.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pixelsmith

ROOT = Path(pixelsmith.__file__).parent
# The rooms in order, each importing only rooms below it (directly or lazily in a function).
LADDER = (
    "utils", "data", "nn", "models", "generate", "metrics", "edit", "faces", "deploy", "serve",
    "cli", "api",
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
