"""Pretrained models shipped inside the package, each with its recipe and measured results.

`zoo:NAME` works wherever a run folder or checkpoint is accepted (`pixelsmith sample zoo:NAME`,
`load_model("zoo:NAME")`, `pixelsmith train --init zoo:NAME`); `pixelsmith zoo list` shows them.
"""

from pixelsmith.zoo.registry import (
    ENV,
    PREFIX,
    Entry,
    entries,
    entry,
    export_run,
    export_tensors,
    path,
    remake_check,
    resolve,
    root,
    verify,
    zoo_name,
)

__all__ = [
    "ENV",
    "PREFIX",
    "Entry",
    "entries",
    "entry",
    "export_run",
    "export_tensors",
    "path",
    "remake_check",
    "resolve",
    "root",
    "verify",
    "zoo_name",
]
