"""The training engine: the loop, its hooks, checkpoints, run folders, batches, EMA, torchrun.

`pixelsmith.train(...)` is also the Python entry point that trains a preset. Importing this
package sets `pixelsmith.train` to the package (Python makes a package's submodules its
attributes), which would hide that function: so the package itself is callable and does the same.
"""

import sys
import types
from pathlib import Path
from typing import Any


class _Callable(types.ModuleType):
    def __call__(
        self, preset: str, *overrides: str, out: str | Path = "runs", **kwargs: Any
    ) -> Path:
        """Train a preset (e.g. "dcgan") with `key=value` overrides (as --set takes them);
        returns the run folder."""
        from pixelsmith.train.config import build_config
        from pixelsmith.train.loop import train

        return train(build_config(preset, overrides=list(overrides)), out_root=out, **kwargs)


sys.modules[__name__].__class__ = _Callable
