"""A trained model from a run folder, a checkpoint file or the zoo (`zoo:NAME`)."""

from __future__ import annotations

from pathlib import Path

import torch

from pixelsmith.errors import UserError
from pixelsmith.models import family_class
from pixelsmith.models.base import Family
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.zoo import resolve

# Zoo models trained outside the engine, and the command that uses them.
NOT_ENGINE = {"forensics": "`pixelsmith detect` uses it", "provenance": "a watermark network"}


def load_model(
    run_or_checkpoint: str | Path, device: str | torch.device = "cpu", family: str | None = None
) -> Family:
    """The model of a run folder (its newest checkpoint), a checkpoint or "zoo:NAME", with its
    EMA weights and its run's sampling options; `family` refuses a model of any other family."""
    path = resolve(run_or_checkpoint)
    saved = ckf.read_manifest(path).get("family")
    if family is not None and saved != family:
        raise UserError(f"{path} holds a {saved} model, not a {family} model")
    if saved in NOT_ENGINE:
        raise UserError(f"{run_or_checkpoint} is a {saved} model ({NOT_ENGINE[saved]}), not one "
                        "that samples or edits")  # fmt: skip
    return family_class(str(saved)).from_checkpoint(path, device=device)
