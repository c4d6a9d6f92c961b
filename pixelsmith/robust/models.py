"""Classifiers to attack and evaluate: anything that maps NCHW float32 images in [0, 1] to logits.

`classifier(spec)` loads one, in eval mode, and names it with a hash for evaluation cards:
- "fmnist" / "mnist": pixelsmith's shipped metrics classifiers (hash-checked);
- a TorchScript file (.pt, .pth, .ts);
- a run folder, checkpoint or zoo:NAME of a family that classifies;
- an `nn.Module` from Python, used as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelsmith.errors import UserError
from pixelsmith.utils.checkpoint_file import payload_hash

SCRIPT_SUFFIXES = (".pt", ".pth", ".ts")


class Classifier(nn.Module):
    """A classifier in eval mode with what a card says of it: its name and weights' hash."""

    def __init__(
        self, net: nn.Module, name: str, sha256: str, shape: tuple[int, ...] | None = None
    ) -> None:
        super().__init__()
        self.net, self.name, self.sha256 = net.eval(), name, sha256
        self.image_shape = shape  # (C, H, W) the model takes, when it is known
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _hash(net: nn.Module) -> str:
    return payload_hash(dict(net.state_dict()))


def _shipped(name: str) -> Classifier:
    from pixelsmith.metrics.classifier import load_classifier
    from pixelsmith.metrics.features import SHIPPED, WEIGHTS_DIR

    file, _, _ = SHIPPED[name]
    path = WEIGHTS_DIR / file
    if not path.is_file():
        raise UserError(f"the shipped {name} classifier ({path}) is missing; reinstall pixelsmith")
    net, _ = load_classifier(path)
    return Classifier(net, name, _hash(net), (1, 28, 28))


def classifier(spec: str | Path | nn.Module) -> Classifier:
    """The classifier `spec` names (see the module doc), in eval mode."""
    if isinstance(spec, Classifier):
        return spec
    if isinstance(spec, nn.Module):
        return Classifier(spec, type(spec).__name__, _hash(spec))
    from pixelsmith.metrics.features import SHIPPED

    text = str(spec)
    if text in SHIPPED:
        return _shipped(text)
    path = Path(text).expanduser()
    if path.suffix.lower() in SCRIPT_SUFFIXES:
        if not path.is_file():
            raise UserError(f"TorchScript file {path} does not exist")
        try:
            net = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as e:
            raise UserError(
                f"{path} is not a TorchScript file ({str(e).splitlines()[0]})"
            ) from None
        return Classifier(net, path.name, _hash(net))
    from pixelsmith.generate import load_model

    model: Any = load_model(text)
    if not model.abilities.classifies:
        raise UserError(
            f"{text} is a {model.name} model, not a classifier; attack a classifier (fmnist, a "
            "classifier run, zoo:NAME of one, or a TorchScript file mapping images to logits), "
            "an editor (zoo:sr-x2, zoo:denoise, zoo:inpaint, a restoration run), mtcnn, or a "
            "generator with a latent space"
        )
    sha = model.manifest.get("payload_sha256") or ""
    return Classifier(model.classifier(), text, sha, tuple(model.image_shape))


def check_logits(model: nn.Module, x: torch.Tensor) -> int:
    """The number of classes of a model's logits on x, or UserError when they are not (N, K)."""
    with torch.no_grad():
        out = model(x[:1])
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"the model must map images to (N, K) logits, got {shape}")
    return int(out.shape[1])
