"""The restoration operations: super-resolution, denoising, inpainting and enhancement, with the
shipped models (`pixelsmith zoo list`) or a run of your own (`model`), and the classical tools."""

from __future__ import annotations

from typing import Any

from pixelsmith.data.degrade import imresize
from pixelsmith.edit import classical, ops
from pixelsmith.edit.photo import Photo
from pixelsmith.errors import UserError
from pixelsmith.jobs.operation import Context, Operation
from pixelsmith.jobs.options import Choice, File, Number, Several

SCALES = (2, 4)  # the shipped super-resolution models
MODEL = File(
    "model", "a model of your own (run folder, checkpoint or zoo:NAME); default: the shipped one"
)


def _sr_scale(o: dict[str, Any]) -> int:
    """The scale: the option, or a model of your own's own factor (which must agree with it)."""
    if o["model"] is None:
        return o["scale"] or SCALES[0]
    m = ops.restorer("sr", o["model"], None)
    if o["scale"] is not None and o["scale"] != m.cfg.scale:
        raise UserError(f"that model upscales x{m.cfg.scale}, not x{o['scale']}")
    return int(m.cfg.scale)


def _say_model(ctx: Context, o: dict[str, Any], task: str, key: int) -> None:
    """Report the shipped model an edit uses (a model of your own is named by its option), so
    a content credential can record it."""
    if o["model"] is None:
        ctx.report["model"] = ops.default_model(task, key)


def _own(o: dict[str, Any], task: str, key: int | None = None) -> None:
    """A model of your own, loaded once here (and checked for its task) for every file after."""
    if o["model"] is not None:
        o["model"] = ops.restorer(task, o["model"], key)


def _sr_check(o: dict[str, Any], _ctx: Context) -> None:
    _own(o, "sr")
    ops.restorer("sr", o["model"], _sr_scale(o))


def _sr_size(h: int, w: int, o: dict[str, Any], _ctx: Context) -> tuple[int, int]:
    s = _sr_scale(o)
    return h * s, w * s


def _sr(photo: Photo, o: dict[str, Any], ctx: Context) -> Photo:
    scale = ctx.report["scale"] = _sr_scale(o)
    _say_model(ctx, o, "sr", scale)
    out = ops.super_resolve(photo.colour, scale, o["model"], progress=ctx.tiles)
    alpha = None
    if photo.alpha is not None:
        alpha = imresize(photo.alpha[None], scale=scale)[0].clamp(0, 1)
    return photo.with_pixels(out, alpha)


SR = Operation(
    "sr",
    "Super-resolution",
    "upscale x2 or x4 with the shipped models (any size: tiled); alpha is resized with it",
    _sr,
    (
        Choice(
            "scale", "how many times larger", None, choices=SCALES, auto="2, or your model's own"
        ),
        MODEL,
    ),
    size=_sr_size,
    check=_sr_check,
    variants={f"sr-x{s}": {"scale": s} for s in SCALES},
)


def _denoise_check(o: dict[str, Any], _ctx: Context) -> None:
    _own(o, "denoise")
    ops.restorer("denoise", o["model"], 3)
    if o["model"] is None:  # grey images take the grey model
        ops.restorer("denoise", None, 1)


def _denoise(photo: Photo, o: dict[str, Any], ctx: Context) -> Photo:
    _say_model(ctx, o, "denoise", photo.colour.shape[0])
    out = ops.denoise(photo.colour, o["sigma"], o["model"], progress=ctx.tiles)
    return photo.with_pixels(out)


DENOISE = Operation(
    "denoise",
    "Denoise",
    "remove Gaussian noise (blind, or at a known sigma on the 0-255 scale)",
    _denoise,
    (
        Number("sigma", "the noise's sigma on the 0-255 scale", low=0, high=255, auto="estimated"),
        MODEL,
    ),
    check=_denoise_check,
)


def _inpaint_check(o: dict[str, Any], _ctx: Context) -> None:
    if o["method"] in ops.LEARNED_FILLS:
        _own(o, "inpaint")
        own = o["model"]
        ops.restorer("inpaint", ops.LEARNED_FILLS[o["method"]] if own is None else own)


def _inpaint(photo: Photo, o: dict[str, Any], ctx: Context) -> Photo:
    assert ctx.mask is not None  # Operation.run checks the need
    if o["method"] in ops.LEARNED_FILLS and o["model"] is None:
        ctx.report["model"] = ops.LEARNED_FILLS[o["method"]]
    out = ops.inpaint(photo.colour, ctx.mask, o["model"], o["method"], progress=ctx.tiles)
    return photo.with_pixels(out)


INPAINT = Operation(
    "inpaint",
    "Inpaint",
    "fill the masked pixels (white, or transparent, in the mask)",
    _inpaint,
    (
        Choice(
            "method",
            "learned (a harmonic fill refined by the shipped model), texture (the shipped "
            "model trained to draw texture, not blur) or a classical fill",
            choices=(*ops.LEARNED_FILLS, *classical.FILLS),
        ),
        MODEL,
    ),
    needs=("mask",),
    check=_inpaint_check,
    variants={"inpaint-texture": {"method": "texture"}},
)


def _enhance_check(o: dict[str, Any], _ctx: Context) -> None:
    if "learned" in o["methods"]:
        _own(o, "enhance")
        ops.restorer("enhance", o["model"])


def _enhance(photo: Photo, o: dict[str, Any], ctx: Context) -> Photo:
    if "learned" in o["methods"]:
        _say_model(ctx, o, "enhance", 3)
    return photo.with_pixels(
        ops.enhance(photo.colour, o["methods"], o["model"], progress=ctx.tiles)
    )


ENHANCE = Operation(
    "enhance",
    "Enhance",
    "low-light / exposure correction (learned), and classical contrast and colour tools",
    _enhance,
    (
        Several(
            "methods",
            "enhancements applied in order",
            ("learned",),
            choices=ops.ENHANCE_METHODS,
        ),
        MODEL,
    ),
    check=_enhance_check,
)

OPERATIONS = (SR, DENOISE, INPAINT, ENHANCE)
