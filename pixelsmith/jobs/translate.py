"""Translation between a CycleGAN's two domains, as an operation on images."""

from __future__ import annotations

from typing import Any

from pixelsmith.edit.photo import Photo
from pixelsmith.edit.translate import check_translator, translate_image
from pixelsmith.jobs.operation import Context, Operation
from pixelsmith.jobs.options import Choice


def _check(_o: dict[str, Any], ctx: Context) -> None:
    if ctx.model is not None:
        check_translator(ctx.model)


def _size(_h: int, _w: int, _o: dict[str, Any], ctx: Context) -> tuple[int, int]:
    assert ctx.model is not None
    return tuple(ctx.model.image_shape[1:])  # type: ignore[return-value]


def _translate(photo: Photo, o: dict[str, Any], ctx: Context) -> Photo:
    assert ctx.model is not None  # Operation.run checks the need
    out = translate_image(ctx.model, photo.colour, o["direction"])
    return Photo(out, None, False, "RGB" if out.shape[0] == 3 else "L")


TRANSLATE = Operation(
    "translate",
    "Translate (CycleGAN)",
    "map an image to a CycleGAN's other domain, at the model's size (e.g. sneaker -> boot)",
    _translate,
    (Choice("direction", "a2b (domain A to B) or b2a", choices=("a2b", "b2a")),),
    needs=("translator",),
    size=_size,
    keeps_alpha=False,
    check=_check,
)

OPERATIONS = (TRANSLATE,)
