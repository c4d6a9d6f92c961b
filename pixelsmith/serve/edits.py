"""The edit operations the service offers, each one call into the library.

`operations` lists them with their options (what GET /v1/edits answers and the web page builds
its form from); `check_edit` refuses a bad operation or option before any pixel is decoded;
`apply_edit` runs one on a decoded upload. sr / denoise / inpaint / enhance go through
`pixelsmith.edit.files.edit_photo` (the shipped zoo models), anonymise and restore-faces
through `pixelsmith.faces`, translate through a served CycleGAN's own `translate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pixelsmith.edit import classical
from pixelsmith.edit.photo import Photo
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family

# The face restorer's chains of ops, offered as single choices (with sr the photo doubles).
FACE_OPS = ("denoise,enhance", "denoise", "enhance", "denoise,enhance,sr")


@dataclass(frozen=True)
class Operation:
    """One edit: its id, a title for people, and each option's allowed values (first = default)."""

    id: str
    title: str
    options: dict[str, list[Any]] = field(default_factory=dict)
    needs_mask: bool = False

    def card(self) -> dict[str, Any]:
        """What GET /v1/edits says of it."""
        return {
            "id": self.id,
            "title": self.title,
            "options": self.options,
            "needs_mask": self.needs_mask,
        }


def operations(translators: dict[str, Family]) -> dict[str, Operation]:
    """The edits on offer: the restorers always, translate when a CycleGAN is served."""
    from pixelsmith.faces.anonymise import METHODS

    ops = [
        Operation("sr", "Super-resolution", {"scale": [2, 4]}),
        Operation("denoise", "Denoise", {"sigma": ["auto", 5, 15, 25, 50]}),
        Operation("inpaint", "Inpaint", {"method": ["learned", *classical.FILLS]}, True),
        Operation("enhance", "Enhance", {"method": ["learned", *classical.ENHANCERS]}),
        Operation("anonymise", "Anonymise faces", {"method": list(METHODS)}),
        Operation("restore-faces", "Restore faces", {"ops": list(FACE_OPS)}),
    ]
    if translators:
        ops.append(
            Operation(
                "translate",
                "Translate (CycleGAN)",
                {"model": list(translators), "direction": ["a2b", "b2a"]},
            )
        )
    return {o.id: o for o in ops}


def check_edit(
    operation: str | None, fields: dict[str, str], offered: dict[str, Operation]
) -> dict[str, Any]:
    """The operation's options from the form's text fields, each checked; UserError otherwise."""
    if operation not in offered:
        raise UserError(
            f"unknown operation {operation!r}; GET /v1/edits lists {', '.join(offered)}"
        )
    op = offered[operation]
    chosen: dict[str, Any] = {}
    for name, allowed in op.options.items():
        text = fields.get(name)
        if text is None or text == "":
            chosen[name] = allowed[0]
            continue
        match = next((v for v in allowed if str(v) == text), None)
        if match is None:
            raise UserError(
                f"{operation}: {name} must be one of {', '.join(map(str, allowed))}, got {text!r}"
            )
        chosen[name] = match
    return chosen


def output_pixels(operation: str, options: dict[str, Any], height: int, width: int) -> int:
    """How many pixels the edit's answer will have."""
    scale = int(options.get("scale", 1)) if operation == "sr" else 1
    if operation == "restore-faces" and "sr" in options.get("ops", ""):
        scale = 2
    return height * width * scale * scale


def apply_edit(
    operation: str,
    options: dict[str, Any],
    photo: Photo,
    mask: Photo | None,
    translators: dict[str, Family],
    check: Callable[[], None],
    image_bytes: bytes | None = None,
) -> Photo:
    """One checked edit on a decoded upload; `check()` runs between tiles (the queue's timeout)."""
    from pixelsmith.edit.files import edit_photo, mask_of

    progress = lambda _done, _total: check()  # noqa: E731
    if operation == "sr":
        return edit_photo("sr", photo, scale=options["scale"], progress=progress)
    if operation == "denoise":
        sigma = None if options["sigma"] == "auto" else float(options["sigma"])
        return edit_photo("denoise", photo, sigma=sigma, progress=progress)
    if operation == "inpaint":
        if mask is None:
            raise UserError("inpaint needs a mask: a `mask` image part, white = the pixels to fill")
        if mask.size != photo.size:
            raise UserError(
                f"the mask is {mask.size[1]}x{mask.size[0]} but the image is "
                f"{photo.size[1]}x{photo.size[0]}; they must be the same size"
            )
        return edit_photo(
            "inpaint",
            photo,
            mask=mask_of(mask),
            method=options["method"],
            progress=progress,
        )
    if operation == "enhance":
        return edit_photo("enhance", photo, methods=(options["method"],), progress=progress)
    if operation == "anonymise":
        from pixelsmith.faces.anonymise import anonymise
        from pixelsmith.faces.detect import detect_faces

        faces = detect_faces(photo.colour)
        check()
        return photo.with_pixels(anonymise(photo.colour, faces, options["method"]).image)
    if operation == "restore-faces":
        from pixelsmith.faces.detect import detect_faces
        from pixelsmith.faces.restore import restore_faces

        faces = detect_faces(photo.colour)
        check()
        out, _ = restore_faces(photo.colour, faces, tuple(options["ops"].split(",")))
        alpha = photo.alpha
        if alpha is not None and out.shape[-2:] != alpha.shape[-2:]:
            from pixelsmith.data.degrade import imresize

            alpha = imresize(alpha[None], scale=2)[0].clamp(0, 1)
        return photo.with_pixels(out, alpha)
    if operation == "translate":
        from pixelsmith.edit.translate import read_for_model

        model = translators[options["model"]]
        x = read_for_model("upload", model.image_shape, data=image_bytes)  # type: ignore[arg-type]
        out = model.translate(x, options["direction"])[0]
        return Photo(out.clamp(0, 1), None, False, "RGB" if out.shape[0] == 3 else "L")
    raise UserError(f"unknown operation {operation!r}")
