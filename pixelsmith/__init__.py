"""pixelsmith: train, sample, edit, measure, harden and serve deep generative image models."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pixelsmith.models.base import Family


def load(run_or_checkpoint: str, device: str = "cpu") -> Family:
    """Load a trained model (EMA weights) from a run folder or checkpoint, ready to `.sample()`."""
    from pixelsmith.api import load_model

    return load_model(run_or_checkpoint, device=device)


def evaluate(run_or_checkpoint: str, **kwargs):
    """FID/KID/IS/precision-recall of a trained model's samples, each with its protocol card."""
    from pixelsmith.api import evaluate as _evaluate

    return _evaluate(run_or_checkpoint, **kwargs)
