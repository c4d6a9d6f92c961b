"""The editing operations on images in memory: super-resolution, denoising, inpainting and
enhancement, with pixelsmith's shipped restoration models (`pixelsmith zoo list`) or a run of
your own (`model=`), and the classical tools of `pixelsmith.edit.classical`.

Images are float (C, H, W) or (N, C, H, W) tensors in [0, 1], C = 1 or 3 (`pixelsmith.edit.files`
handles files, alpha and modes). A grey image through a colour model goes in as three equal
channels and comes back as their Rec. 601 luma; a colour image through a grey model goes channel
by channel. Large images run in tiles of `TILE` input pixels with the same result as one pass
(`pixelsmith.nn.tiles`), so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from pixelsmith.edit import classical
from pixelsmith.errors import UserError
from pixelsmith.generate import load_model
from pixelsmith.models.base import Family
from pixelsmith.models.restore import luminance

TILE = 512
Progress = Callable[[int, int], None]
# (task, scale or channels) -> the shipped model it uses by default
DEFAULT_MODELS: dict[tuple[str, int], str] = {
    ("sr", 2): "sr-x2",
    ("sr", 4): "sr-x4",
    ("denoise", 3): "denoise",
    ("denoise", 1): "denoise-grey",
    ("inpaint", 3): "inpaint",
    ("enhance", 3): "enhance",
}
# The learned inpainting methods and the shipped refinement each uses unless given a model:
# "texture" gives up to 0.2 dB of PSNR for texture in the holes (docs/editing.md).
LEARNED_FILLS = {
    "learned": "zoo:" + DEFAULT_MODELS["inpaint", 3],
    "texture": "zoo:inpaint-texture",
}
_LOADED: dict[tuple[str, str], Family] = {}


def default_model(task: str, key: int) -> str:
    """The shipped model for a task and a scale (sr) or channel count (grey: the colour one
    when there is no grey one)."""
    name = DEFAULT_MODELS.get((task, key))
    if name is None and task != "sr":
        name = DEFAULT_MODELS.get((task, 3))
    if name is None:
        what = f"x{key} " if task == "sr" else ""
        raise UserError(f"no shipped {what}{task} model; pass a model of your own (--model RUN)")
    return "zoo:" + name


def restorer(
    task: str, model: Family | str | Path | None = None, key: int | None = 3, device: str = "cpu"
) -> Family:
    """The restoration model for `task`: `model` (a run, checkpoint, zoo:NAME or a loaded model)
    or the shipped default for the scale or channels `key`; refuses a model made for another task
    or (with a `key`) another scale."""
    if isinstance(model, Family):
        m = model
    else:
        target = str(model) if model is not None else default_model(task, 3 if key is None else key)
        if not target.startswith("zoo:"):  # a run may be retrained: load it afresh
            m = load_model(target, device=device)
        else:  # the shipped files never change: load each once
            if (target, device) not in _LOADED:
                _LOADED[target, device] = load_model(target, device=device)
            m = _LOADED[target, device]
    if not m.abilities.restores:
        raise UserError(f"a {m.name} model does not restore images; pass a restoration model")
    got = m.cfg.task
    if got != task:
        raise UserError(f"that model is a {got} model, not a {task} model")
    if task == "sr" and key is not None and m.cfg.scale != key:
        raise UserError(f"that model upscales x{m.cfg.scale}, not x{key}")
    return m


def check_sigma(sigma: float | None) -> None:
    """Refuse a noise sigma off the 0-255 scale."""
    if sigma is not None and not 0 <= sigma <= 255:
        raise UserError(f"sigma is on the 0-255 scale, got {sigma}")


def check_fill(method: str) -> None:
    """Refuse an unknown inpainting method."""
    if method not in LEARNED_FILLS and method not in classical.FILLS:
        names = ", ".join([*LEARNED_FILLS, *classical.FILLS])
        raise UserError(f"unknown inpainting method {method!r}; use one of {names}")


def check_enhancements(methods: Sequence[str]) -> None:
    """Refuse an empty list or an unknown name of enhancement."""
    unknown = [m for m in methods if m not in ENHANCE_METHODS]
    if unknown or not methods:
        raise UserError(
            f"unknown enhancement {unknown[0] if unknown else ''!r}; "
            f"use one or more of {', '.join(ENHANCE_METHODS)}"
        )


def _batched(x: Tensor) -> tuple[Tensor, bool]:
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise UserError(f"images must be (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    return x, False


def _check_channels(x: Tensor) -> None:
    if x.shape[1] not in (1, 3):
        raise UserError(f"images must be grey or RGB, got {x.shape[1]} channels (strip alpha)")


def _through(model: Family, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """fn on x in the model's channels, returned in x's channels (see the module doc)."""
    want, have = model.image_shape[0], x.shape[1]
    if want == have:
        return fn(x)
    if want == 3:
        return luminance(fn(x.expand(-1, 3, -1, -1)))
    return torch.cat([fn(x[:, i : i + 1]) for i in range(have)], 1)


def _run(op: Callable[[Tensor], Tensor], x: Tensor, model: Family) -> Tensor:
    """op on each image of x in turn, in the model's channels."""
    xb, single = _batched(x.float())
    _check_channels(xb)
    out = torch.cat([_through(model, xb[i : i + 1], op) for i in range(xb.shape[0])])
    return out[0] if single else out


def super_resolve(
    x: Tensor,
    scale: int = 2,
    model: Family | str | Path | None = None,
    tile: int | None = TILE,
    progress: Progress | None = None,
) -> Tensor:
    """x upscaled `scale` times by a super-resolution model (shipped: x2 and x4)."""
    m = restorer("sr", model, scale)
    return _run(lambda v: m.restore(v, tile=tile, progress=progress), x, m)


def denoise(
    x: Tensor,
    sigma: float | None = None,
    model: Family | str | Path | None = None,
    tile: int | None = TILE,
    progress: Progress | None = None,
) -> Tensor:
    """x with Gaussian noise removed; `sigma` (0-255 scale) when known, else estimated."""
    check_sigma(sigma)
    xb, _ = _batched(x)
    m = restorer("denoise", model, int(xb.shape[1]))
    return _run(lambda v: m.restore(v, sigma=sigma, tile=tile, progress=progress), x, m)


def check_mask_size(
    mask: tuple[int, int], image: tuple[int, int], names: tuple[str, str] = ("mask", "image")
) -> None:
    """Refuse a mask whose (height, width) is not its image's, naming both."""
    if tuple(mask) != tuple(image):
        raise UserError(
            f"the {names[0]} is {mask[1]}x{mask[0]} but the {names[1]} is {image[1]}x{image[0]}; "
            "they must be the same size"
        )


def _check_mask(x: Tensor, mask: Tensor) -> Tensor:
    xb, _ = _batched(x)
    mb = mask if mask.ndim == 4 else mask.reshape(1, 1, *mask.shape[-2:])
    check_mask_size(tuple(mb.shape[-2:]), tuple(xb.shape[-2:]))
    return (mb > 0.5).float()


def inpaint(
    x: Tensor,
    mask: Tensor,
    model: Family | str | Path | None = None,
    method: str = "learned",
    tile: int | None = TILE,
    progress: Progress | None = None,
) -> Tensor:
    """x with the mask's holes (1 / white) filled: "learned" or "texture" (a harmonic fill
    refined by `model`, default the method's shipped one), or a classical fill alone
    ("harmonic", "telea")."""
    m = _check_mask(x, mask)
    check_fill(method)
    if method not in LEARNED_FILLS:
        xb, single = _batched(x.float())
        out = classical.FILLS[method](xb, m.expand(xb.shape[0], -1, -1, -1))
        return out[0] if single else out
    net = restorer("inpaint", LEARNED_FILLS[method] if model is None else model)
    xb, single = _batched(x.float())
    _check_channels(xb)
    outs = []
    for i in range(xb.shape[0]):
        j = min(i, m.shape[0] - 1)  # one mask per image, or one for all
        mi = m[j : j + 1]
        fn = lambda v, mi=mi: net.restore(v, mask=mi, tile=tile, progress=progress)  # noqa: E731
        outs.append(_through(net, xb[i : i + 1], fn))
    out = torch.cat(outs)
    return out[0] if single else out


ENHANCE_METHODS = ("learned", *classical.ENHANCERS)


def enhance(
    x: Tensor,
    methods: Sequence[str] = ("learned",),
    model: Family | str | Path | None = None,
    tile: int | None = TILE,
    progress: Progress | None = None,
) -> Tensor:
    """x through the named enhancements in order: "learned" (the low-light / exposure model)
    and the classical ones (autocontrast, clahe, white-balance, gamma, unsharp)."""
    check_enhancements(methods)
    out = x.float()
    for name in methods:
        if name == "learned":
            m = restorer("enhance", model)
            out = _run(lambda v, m=m: m.restore(v, tile=tile, progress=progress), out, m)
        else:
            out = classical.enhance_classical(out, [name])
    return out
