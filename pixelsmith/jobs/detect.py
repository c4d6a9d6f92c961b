"""`pixelsmith faces detect|align` on files: the faces of an image or a folder, and each face
as an aligned crop. Both follow jobs.plan (unreadable files in a folder skipped and counted,
everything refused before the first write)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from pixelsmith import imageio
from pixelsmith.edit.photo import Photo, write_photo
from pixelsmith.errors import UserError
from pixelsmith.faces.align import MIN_SIZE, align_face
from pixelsmith.faces.detect import check_detector, detect_faces, draw_faces
from pixelsmith.jobs.files import Log, Progress, each_photo
from pixelsmith.jobs.plan import find_inputs, plan


def _check_min_size(min_size: float) -> None:
    if not (min_size >= 1 and math.isfinite(min_size)):
        raise UserError(f"--min-size must be at least 1 pixel, not {min_size}")


def detect_files(
    src: str | Path,
    detector: str = "auto",
    min_size: float = 20,
    threshold: float | None = None,
    out: str | Path | None = None,
    cap: int | None = None,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """Faces in an image or a folder: [{file, width, height, faces: [Face.to_dict()]}], `file`
    relative to the folder; with `out`, the boxes drawn (one PNG, or a folder of PNGs)."""
    name = check_detector(detector)
    _check_min_size(min_size)
    p = find_inputs(src, cap=cap) if out is None else plan(src, out, suffix=".png", cap=cap)
    results = []
    for item, photo in each_photo(p, Progress(len(p), log), cap):
        faces = detect_faces(photo.colour, name, min_size, threshold)
        h, w = photo.size
        results.append(
            {
                "file": str(item.source if p.single else item.rel),
                "width": w,
                "height": h,
                "faces": [face.to_dict() for face in faces],
            }
        )
        if out is not None:
            write_photo(Photo(draw_faces(photo.colour, faces), None, False, "RGB"), item.target)
    p.say_skipped()
    return results


def align_files(
    src: str | Path,
    out: str | Path,
    size: int = 112,
    detector: str = "auto",
    padding: float = 0.0,
    min_size: float = 20,
    threshold: float | None = None,
    cap: int | None = None,
    log: Log | None = None,
) -> list[Path]:
    """One aligned PNG per detected face (OUT/NAME_face0.png, ...) of an image or a folder;
    crops keep the input's mode (grey, 16-bit, alpha), a folder's subfolders are kept."""
    if int(size) != size or size < MIN_SIZE:
        raise UserError(f"--size must be a whole number of pixels >= {MIN_SIZE}, not {size}")
    if not 0 <= padding <= 2:
        raise UserError(f"--padding must be between 0 and 2, not {padding}")
    limit = imageio.max_pixels() if cap is None else cap
    if size * size > limit:
        raise UserError(f"--size {size} makes crops of {size * size:,} pixels, over the limit of "
                        f"{limit:,}; choose a smaller size")  # fmt: skip
    _check_min_size(min_size)
    name = check_detector(detector)
    p = plan(src, out, outputs="crops", suffix=".png", cap=cap)
    written: list[Path] = []
    for item, photo in each_photo(p, Progress(len(p), log), cap):
        faces = detect_faces(photo.colour, name, min_size, threshold)
        pixels = photo.colour if photo.alpha is None else torch.cat([photo.colour, photo.alpha])
        c = photo.colour.shape[0]
        for k, face in enumerate(faces):
            crop, _ = align_face(pixels, face, int(size), padding)
            alpha = crop[c:] if photo.alpha is not None else None
            aligned = replace(photo, colour=crop[:c].clamp(0, 1), alpha=alpha)
            written.append(write_photo(aligned, item.output(f"_face{k}")))
    p.say_skipped()
    return written
