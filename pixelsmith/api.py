"""The Python entry points: load a model, sample from it, score it, train one.

Each is a thin call into the room that owns the work (generate, metrics, train); the CLI and the
server call those same functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelsmith.generate import load_model, sample_to, style_mix_to
from pixelsmith.models.base import Family

__all__ = ["evaluate", "load_model", "sample_to", "style_mix_to", "train"]


def evaluate(
    run_or_checkpoint: str | Path | Family,
    metrics: str = "auto",
    device: str = "cpu",
    **kwargs: Any,
) -> list[Any]:
    """Scores of a trained model, each with its protocol card (see `evaluate_model`)."""
    from pixelsmith.metrics.evaluate import evaluate_model

    model = (
        run_or_checkpoint
        if isinstance(run_or_checkpoint, Family)
        else load_model(run_or_checkpoint, device=device)
    )
    return evaluate_model(model, metrics, **kwargs)


def train(preset: str, *overrides: str, out: str | Path = "runs", **kwargs: Any) -> Path:
    """Train a preset with `key=value` overrides (as --set takes them); returns the run folder."""
    import pixelsmith.train as engine

    return engine(preset, *overrides, out=out, **kwargs)
