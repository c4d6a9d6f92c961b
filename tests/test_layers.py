"""The rooms of the house import only rooms below them (see the map in README.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pixelsmith

ROOT = Path(pixelsmith.__file__).parent
# room -> the rooms it must never import (directly or lazily inside a function)
FORBIDDEN = {
    "utils": {
        "zoo",
        "data",
        "nn",
        "models",
        "generate",
        "train",
        "metrics",
        "edit",
        "faces",
        "deploy",
        "serve",
        "cli",
        "api",
    },
    "data": {
        "zoo",
        "nn",
        "models",
        "generate",
        "train",
        "metrics",
        "edit",
        "faces",
        "deploy",
        "serve",
        "cli",
        "api",
    },
    "nn": {
        "zoo",
        "models",
        "generate",
        "train",
        "metrics",
        "edit",
        "faces",
        "deploy",
        "serve",
        "cli",
        "api",
    },
    "models": {
        "zoo",
        "generate",
        "train",
        "metrics",
        "edit",
        "faces",
        "deploy",
        "serve",
        "cli",
        "api",
    },
    "generate": {"train", "metrics", "edit", "faces", "deploy", "serve", "cli", "api"},
    "metrics": {"train", "edit", "faces", "deploy", "serve", "cli", "api"},
    "train": {"edit", "faces", "deploy", "serve", "cli", "api"},
    "edit": {"train", "faces", "deploy", "serve", "cli", "api"},
    "faces": {"train", "deploy", "serve", "cli", "api"},
    "deploy": {"train", "serve", "cli", "api"},
    "serve": {"train", "cli", "api"},
    "zoo": {
        "data",
        "nn",
        "generate",
        "train",
        "metrics",
        "edit",
        "faces",
        "deploy",
        "serve",
        "cli",
        "api",
    },
}


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
