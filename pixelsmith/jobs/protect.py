"""Editors and photos (`pixelsmith.robust.editors`): the `protect` operation, and the attack on
an editor over files (`pixelsmith attack zoo:denoise PHOTO -o OUT`).

`protect` adds a small perturbation that makes the shipped editors (inpaint, super-resolution,
denoise) fail on a photo, and reports the protected photo's PSNR and, per editor, whether its
edit is disrupted. Inpainting is judged on random holes the protection never optimised for,
since the user's mask is not known when a photo is protected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelsmith.edit.photo import Photo, mask_of, read_photo, write_photo
from pixelsmith.errors import UserError
from pixelsmith.jobs.files import Log, Progress, each_photo
from pixelsmith.jobs.operation import Context, Operation
from pixelsmith.jobs.options import Number, Several
from pixelsmith.jobs.plan import plan
from pixelsmith.models.base import Family
from pixelsmith.robust import editors, image_pgd
from pixelsmith.robust.faces import attack_face_detector


@dataclass(frozen=True)
class Budget(Number):
    """A number that may also be written as a fraction (8/255)."""

    def parse(self, value: Any) -> Any:
        if isinstance(value, str) and "/" in value:
            top, _, bottom = value.partition("/")
            try:
                value = float(top) / float(bottom)
            except (ValueError, ZeroDivisionError):
                raise self._bad(self._range() + " (or a fraction such as 8/255)", value) from None
        return super().parse(value)


def _check(o: dict[str, Any], _ctx: Context) -> None:
    for name in o["against"]:  # the shipped models load (and are checked) before any file
        editors.load_editor(name)


def _size(h: int, w: int, _o: dict[str, Any], _ctx: Context) -> tuple[int, int]:
    image_pgd.check_size(h, w)
    return h, w


def _protect(photo: Photo, o: dict[str, Any], ctx: Context) -> Photo:
    if photo.colour.shape[0] not in (1, 3):
        raise UserError(f"protect takes grey or RGB photos, got {photo.colour.shape[0]} channels")
    p = editors.protect(
        photo.colour, o["against"], o["eps"], o["steps"], seed=o["seed"], tick=ctx.tick
    )
    ctx.report.update(p.report())
    return photo.with_pixels(p.image)


PROTECT = Operation(
    "protect",
    "Protect from edits",
    "a perturbation of at most eps per value that makes inpainting, super-resolution and "
    "denoising fail on the photo; keep it lossless (PNG): JPEG weakens it",
    _protect,
    (
        Several(
            "against",
            "the edits to make fail",
            editors.PROTECT_AGAINST,
            choices=editors.PROTECT_AGAINST,
            repeats=False,
        ),
        Budget(
            "eps",
            "the largest change of a pixel value, on the 0-1 scale (8/255 = 0.0314)",
            0.0314,
            low=0,
            high=image_pgd.MAX_EPS,
        ),
        Number(
            "steps", "attack steps: more is stronger and slower", 50, whole=True, low=0, high=1000
        ),
        Number(
            "seed", "the random start and the random holes", 0, whole=True, low=0, high=2**31 - 1
        ),
    ),
    size=_size,
    check=_check,
)

OPERATIONS = (PROTECT,)


def attack_editor_files(
    editor: str | Path | Family,
    src: str | Path,
    out: str | Path,
    eps: float,
    steps: int,
    *,
    target: str | Path | None = None,
    mask: str | Path | None = None,
    seed: int = 0,
    cap: int | None = None,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """Attack an editor on each image of a file or folder (`editors.attack_editor`), writing the
    adversarial images as PNG (a lossy format would change them); one report row per image.
    `target`: an image to pull the edit toward; `mask`: inpainting's holes (white = fill), else
    seeded random ones. Everything that can be refused is refused before the first write."""
    eps = image_pgd.check_eps(eps)
    ed = editors.load_editor(editor)
    if mask is not None and ed.task != "inpaint":
        raise UserError(f"a {ed.name} editor takes no mask; --mask is for inpainting")
    p = plan(src, out, suffix=".png", inputs=[target, mask], cap=cap)
    hole = mask_of(read_photo(mask, cap)) if mask is not None else None
    for item in p.items:
        h, w = item.header.height, item.header.width
        image_pgd.check_size(h, w)
        if hole is not None and tuple(hole.shape[-2:]) != (h, w):
            raise UserError(
                f"the mask is {hole.shape[-1]}x{hole.shape[-2]} but {item.source} is {w}x{h}; "
                "they must be the same size"
            )
    goal = read_photo(target, cap).colour if target is not None else None
    rows = []
    for item, photo in each_photo(p, Progress(len(p), log), cap):
        result = editors.attack_editor(
            editor if editor in editors.NAMES else ed.model, photo.colour, eps, steps, goal,
            mask=hole, seed=seed,
        )  # fmt: skip
        write_photo(photo.with_pixels(result.images), item.target)
        rows.append({"file": str(item.source), "out": str(item.target), **result.rows()[0]})
    p.say_skipped()
    return rows


def attack_faces_files(
    src: str | Path,
    out: str | Path,
    eps: float,
    steps: int,
    *,
    min_size: float = 20,
    seed: int = 0,
    cap: int | None = None,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """Hide each photo's faces from the MTCNN detector (`robust.faces.attack_face_detector`),
    writing the attacked photos as PNG; one report row per photo (faces before and after)."""
    from pixelsmith.faces.detect import check_detector

    eps = image_pgd.check_eps(eps)
    check_detector("mtcnn")  # its weights are installed, before any file
    p = plan(src, out, suffix=".png", cap=cap)
    for item in p.items:
        image_pgd.check_size(item.header.height, item.header.width)
    rows = []
    for item, photo in each_photo(p, Progress(len(p), log), cap):
        result = attack_face_detector(photo.colour, eps, steps, min_size=min_size, seed=seed)
        write_photo(photo.with_pixels(result.image), item.target)
        rows.append({"file": str(item.source), "out": str(item.target), "eps": eps,
                     **result.row()})  # fmt: skip
    p.say_skipped()
    return rows
