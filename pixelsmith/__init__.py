"""pixelsmith: train, sample, edit, measure, harden and serve deep generative image models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelsmith.version import __version__ as __version__

if TYPE_CHECKING:
    from pixelsmith.models.base import Family


def load(run_or_checkpoint: str | Path, device: str = "cpu") -> Family:
    """Load a trained model (EMA weights) from a run folder or checkpoint, ready to `.sample()`."""
    from pixelsmith.generate import load_model

    return load_model(run_or_checkpoint, device=device)


def evaluate(run_or_checkpoint: str | Path, **kwargs: Any) -> list[Any]:
    """FID/KID/IS/precision-recall or a family's own scores, each with its protocol card."""
    from pixelsmith.api import evaluate as _evaluate

    return _evaluate(run_or_checkpoint, **kwargs)


def train(preset: str, *overrides: str, **kwargs: Any) -> Path:
    """Train a preset (e.g. "dcgan") with `key=value` overrides; returns the run folder."""
    from pixelsmith.api import train as _train

    return _train(preset, *overrides, **kwargs)
