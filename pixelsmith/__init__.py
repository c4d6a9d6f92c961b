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
