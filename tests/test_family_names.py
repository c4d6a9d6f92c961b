"""Nothing outside pixelsmith/models/ branches on a family's name: callers ask the contract
(abilities, latent spaces, the inference network, declared reasons), never "is this a gan?"."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pixelsmith
from pixelsmith.models import FAMILIES

ROOT = Path(pixelsmith.__file__).parent
NAMES = frozenset(FAMILIES)


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _reads_family(node: ast.AST) -> bool:
    """Whether `node` reads a model's name or family: x.name, x.family, x["family"] or
    x.get("family")."""
    if isinstance(node, ast.Attribute):
        return node.attr in ("name", "family")
    if isinstance(node, ast.Subscript):
        return _text(node.slice) == "family"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "get" and bool(node.args) and _text(node.args[0]) == "family"
    return False


def _family_names(node: ast.AST) -> set[str]:
    """The family names a constant or a literal tuple, list or set of constants spells."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {t for e in node.elts if (t := _text(e)) in NAMES}
    return {t} if (t := _text(node)) in NAMES else set()


def _pattern_names(pattern: ast.pattern) -> set[str]:
    if isinstance(pattern, ast.MatchValue):
        return _family_names(pattern.value)
    if isinstance(pattern, ast.MatchOr):
        return set().union(*(_pattern_names(p) for p in pattern.patterns))
    if isinstance(pattern, ast.MatchAs) and pattern.pattern is not None:
        return _pattern_names(pattern.pattern)
    return set()


_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def name_branches(source: str) -> list[tuple[int, str]]:
    """(line, what) for each place in `source` that compares a model's name or family with a
    registered family's name, or keys a dict literal by family names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and all(isinstance(op, _OPS) for op in node.ops):
            operands = [node.left, *node.comparators]
            if any(_reads_family(o) for o in operands):
                names = set().union(*(_family_names(o) for o in operands))
                if names:
                    found.append((node.lineno, f"compares a name with {sorted(names)}"))
        elif isinstance(node, ast.Match) and _reads_family(node.subject):
            names = set().union(*(_pattern_names(c.pattern) for c in node.cases))
            if names:
                found.append((node.lineno, f"matches a name against {sorted(names)}"))
        elif isinstance(node, ast.Dict):
            names = {t for k in node.keys if k is not None and (t := _text(k)) in NAMES}
            if names:
                found.append((node.lineno, f"a dict keyed by family names {sorted(names)}"))
    return sorted(found)


def test_no_code_outside_models_branches_on_a_family_name():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "models":
            continue
        bad += [f"{rel}:{line}: {what}" for line, what in name_branches(path.read_text())]
    assert not bad, "branch on abilities, not names:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "code",
    [
        'if model.name == "gan": pass',
        'if "stylegan" != m.name: pass',
        'ok = space.model.name in ("gan", "vae")',
        'ok = meta["family"] not in ["vae"]',
        'ok = man.get("family") == "cyclegan"',
        'ok = x.family == "diffusion"',
        'match model.name:\n    case "gan" | "vae":\n        pass',
        'WHY = {"pixelcnn": "a loop", "other": 1}',
    ],
)
def test_the_scan_finds_each_kind_of_name_branch(code):
    assert len(name_branches(code)) == 1, code


@pytest.mark.parametrize(
    "code",
    [
        'if path.name == "checkpoints": pass',
        'if backend.name == "eager": pass',
        'if kind == "gan": pass',  # not a model's name: a plain variable
        'msg = f"a {model.name} model"',
        'ok = model.abilities.latent and space.kind in ("w", "w+")',
        'd = {"z": 1, "w": 2}',
    ],
)
def test_the_scan_leaves_other_comparisons_alone(code):
    assert name_branches(code) == []
