"""Every operation on images pixelsmith offers, by name: the one list the doors read.

A module of declarations exports `OPERATIONS`, a tuple of `Operation`s; `MODULES` names the
modules, in the order the doors list them.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from pixelsmith.errors import UserError
from pixelsmith.jobs.operation import Operation

MODULES = (
    "pixelsmith.jobs.restore",
    "pixelsmith.jobs.faces",
    "pixelsmith.jobs.translate",
    "pixelsmith.jobs.protect",
)


@functools.cache
def operations() -> dict[str, Operation]:
    """Every operation by name, in the order the doors list them."""
    out: dict[str, Operation] = {}
    for module in MODULES:
        for op in importlib.import_module(module).OPERATIONS:
            for name in (op.name, *op.variants):
                if name in out or any(name in o.variants for o in out.values()):
                    raise RuntimeError(f"two operations are called {name!r}")
            out[op.name] = op
    return out


def resolve(name: str) -> tuple[Operation, dict[str, Any]]:
    """The operation a name stands for, and the options a variant name sets (sr-x4: scale 4)."""
    ops = operations()
    if name in ops:
        return ops[name], {}
    for op in ops.values():
        if name in op.variants:
            return op, dict(op.variants[name])
    names = [n for op in ops.values() for n in (op.name, *op.variants)]
    raise UserError(f"unknown operation {name!r}; the operations are {', '.join(names)}")
