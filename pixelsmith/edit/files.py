"""`pixelsmith edit OP IN -o OUT` on files: one image or a folder of them, in their own modes.

Everything is checked before anything is written: every input's header (readable, within the
pixel limit, `PIXELSMITH_MAX_PIXELS`), a super-resolved output's size against the same limit,
the mask (exists, same size as its image), and that each output's format can hold the image
(no alpha into JPEG) and overwrites no input. Outputs keep the input's mode (see
`pixelsmith.edit.photo`) and, unless OUT names a file, its name and format: a folder comes back
as a folder with the same relative paths. Each file is written atomically.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from pixelsmith.data.degrade import imresize
from pixelsmith.data.folder import IMAGE_EXTENSIONS, list_images
from pixelsmith.edit import ops
from pixelsmith.edit.photo import Photo, check_writable, output_format, read_photo, write_photo
from pixelsmith.errors import UserError
from pixelsmith.imageio import ImageHeader, max_pixels, probe_image

OPS = ("sr", "denoise", "inpaint", "enhance")
_ALPHA_MODES = ("LA", "RGBA", "PA", "RGBa", "La")


def plan(src: Path, out: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs for an image or a folder of images."""
    if not src.exists():
        raise UserError(f"input {src} does not exist; pass an image file or a folder of images")
    names_file = bool(out.suffix) and not out.is_dir()
    if not src.is_dir():
        target = out if names_file else out / src.name
        return [(src, target)]
    if names_file:
        raise UserError(f"a folder of inputs needs an output folder, not the file {out}")
    files, _ = list_images(src)
    if not files:
        raise UserError(
            f"folder {src} holds no images (looked for {' '.join(IMAGE_EXTENSIONS)}); "
            "pass a folder of images"
        )
    return [(f, out / f.relative_to(src)) for f in files]


def _has_alpha(h: ImageHeader) -> bool:
    """Whether the image read_photo makes of this file has alpha (a palette may declare it)."""
    if h.mode == "P":
        with Image.open(h.path) as im:
            return "transparency" in im.info
    return h.mode in _ALPHA_MODES


def _check_options(op: str, options: dict[str, Any]) -> None:
    """The model and the options, refused before any file is read or written."""
    if op == "sr":
        ops.restorer("sr", options.get("model"), int(options.get("scale", 2)))
    elif op == "denoise":
        ops.check_sigma(options.get("sigma"))
        ops.restorer("denoise", options.get("model"), 3)
        if options.get("model") is None:  # grey images take the grey model
            ops.restorer("denoise", None, 1)
    elif op == "inpaint":
        method = options.get("method") or "learned"
        ops.check_fill(method)
        if method == "learned":
            ops.restorer("inpaint", options.get("model"))
    elif op == "enhance":
        methods = options.get("methods") or ("learned",)
        ops.check_enhancements(methods)
        if "learned" in methods:
            ops.restorer("enhance", options.get("model"))


def _check(pairs: list[tuple[Path, Path]], op: str, scale: int, mask: Path | None) -> None:
    """Everything that can be refused before work starts (see the module doc)."""
    inputs = {f.resolve() for f, _ in pairs} | ({mask.resolve()} if mask is not None else set())
    mh = probe_image(mask) if mask is not None else None
    for f, target in pairs:
        if target.resolve() in inputs:
            raise UserError(f"writing {target} would overwrite an input; choose another output")
        h = probe_image(f)
        output_format(target)
        check_writable(_has_alpha(h), target)
        if op == "sr" and h.pixels * scale * scale > max_pixels():
            raise UserError(
                f"{f}: x{scale} makes {h.pixels * scale * scale:,} pixels, over the limit of "
                f"{max_pixels():,}; raise PIXELSMITH_MAX_PIXELS or use a smaller image"
            )
        if mask is not None and mh is not None and (mh.width, mh.height) != (h.width, h.height):
            raise UserError(
                f"the mask {mask.name} is {mh.width}x{mh.height} but {f.name} is "
                f"{h.width}x{h.height}; they must be the same size"
            )


def read_mask(path: Path) -> torch.Tensor:
    """A mask image as (1, 1, H, W) float, 1 where it is white (luminance above half)."""
    return mask_of(read_photo(path))


def mask_of(p: Photo) -> torch.Tensor:
    """A mask photo as (1, 1, H, W) float, 1 where it is white (luminance above half)."""
    grey = p.colour if p.colour.shape[0] == 1 else p.colour.mean(0, keepdim=True)
    return (grey > 0.5).float()[None]


def edit_photo(op: str, photo: Photo, **options: Any) -> Photo:
    """One operation on a Photo; alpha follows the pixels (resized for super-resolution)."""
    x = photo.colour
    if op == "sr":
        scale = int(options.get("scale", 2))
        out = ops.super_resolve(x, scale, options.get("model"), progress=options.get("progress"))
        alpha = None
        if photo.alpha is not None:
            alpha = imresize(photo.alpha[None], scale=scale)[0].clamp(0, 1)
        return photo.with_pixels(out, alpha)
    if op == "denoise":
        out = ops.denoise(
            x, options.get("sigma"), options.get("model"), progress=options.get("progress")
        )
    elif op == "inpaint":
        mask = options.get("mask")
        if mask is None:
            raise UserError("inpaint needs --mask MASK (white = the pixels to fill)")
        out = ops.inpaint(
            x,
            mask,
            options.get("model"),
            options.get("method") or "learned",
            progress=options.get("progress"),
        )
    elif op == "enhance":
        methods = options.get("methods") or ("learned",)
        out = ops.enhance(x, methods, options.get("model"), progress=options.get("progress"))
    else:
        raise UserError(f"unknown edit {op!r}; use one of {', '.join(OPS)}")
    return photo.with_pixels(out)


class _Report:
    """A line per file, and tile progress on large images, to stderr."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.i, self.t0, self.last = total, enabled, 0, 0.0, 0.0

    def file(self, i: int, path: Path) -> None:
        self.i, self.t0 = i, time.monotonic()
        if self.enabled:
            print(f"[{i}/{self.total}] {path}", file=sys.stderr, flush=True)

    def tiles(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.enabled and total > 1 and (now - self.last > 2 or done == total):
            self.last = now
            print(f"    tile {done}/{total}", file=sys.stderr, flush=True)


def edit_files(
    op: str,
    src: str | Path,
    out: str | Path,
    mask: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> list[Path]:
    """Run one edit on an image file or a folder of them; returns the files written."""
    if op not in OPS:
        raise UserError(f"unknown edit {op!r}; use one of {', '.join(OPS)}")
    pairs = plan(Path(src), Path(out))
    mask_path = Path(mask) if mask is not None else None
    if op == "inpaint" and mask_path is None:
        raise UserError("inpaint needs --mask MASK (white = the pixels to fill)")
    if mask_path is not None:  # a mask inside the input folder is not an image to edit
        pairs = [(f, t) for f, t in pairs if f.resolve() != mask_path.resolve()]
    _check_options(op, options)
    _check(pairs, op, int(options.get("scale", 2)), mask_path)
    if mask_path is not None:
        options["mask"] = read_mask(mask_path)
    report = _Report(len(pairs), progress)
    options["progress"] = report.tiles
    written = []
    for i, (f, target) in enumerate(pairs, 1):
        report.file(i, f)
        result = edit_photo(op, read_photo(f), **options)
        written.append(write_photo(result, target))
    if log:
        log(f"wrote {len(written)} file(s) to {out}")
    return written
