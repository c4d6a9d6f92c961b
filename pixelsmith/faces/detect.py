"""Find faces: one call over the three detectors (MTCNN, Haar, LBP), and a picture of the result.

`detect_faces` takes a float tensor (C, H, W) or (1, C, H, W) in [0, 1] with 1, 3 or 4
channels (alpha is ignored, grey is repeated for MTCNN), a PIL image or a uint8 (H, W) or
(H, W, C) numpy array, and returns `Face`s in input pixels, best score first, boxes clipped to
the image. Scores mean what each detector says (see `pixelsmith.faces.cascades`): MTCNN's is
O-Net's face probability, Haar's OpenCV's level weight, LBP's a constant 1. `threshold` drops the
faces scoring below it (for MTCNN it is O-Net's threshold, default 0.7; the others default to
keeping all).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pixelsmith.errors import UserError, warn
from pixelsmith.faces import mtcnn as _mtcnn
from pixelsmith.faces.types import Face
from pixelsmith.utils.colour import luma

DETECTORS = ("mtcnn", "haar", "lbp")


def _present(name: str) -> bool:
    from pixelsmith.faces import cascades

    if name == "mtcnn":
        return _mtcnn.weights_present()
    if name == "haar":
        return cascades.haar_available()
    return cascades.lbp_available()


def available_detectors() -> list[str]:
    """The detectors whose libraries or weights are installed, in DETECTORS order."""
    return [d for d in DETECTORS if _present(d)]


_WEAKER = {
    "haar": "OpenCV's Haar cascade, which misses more faces (turned and small ones above all), "
    "finds more false ones and no landmarks but the eyes",
    "lbp": "scikit-image's LBP cascade, which misses more faces and finds no landmarks",
}


def default_detector() -> str:
    """mtcnn when its weights are installed, else haar, else lbp."""
    for d in DETECTORS:
        if _present(d):
            return d
    raise UserError(
        "no face detector is installed; install the MTCNN weights with "
        f"{_mtcnn.INSTALL_HINT}, or OpenCV and scikit-image with pip install 'pixelsmith[faces]'"
    )


def fallback_note(detector: str) -> str | None:
    """One line saying that `auto` chose a weaker detector than MTCNN, why, and how to get MTCNN
    (None when it chose MTCNN)."""
    if detector == "mtcnn" or detector not in _WEAKER:
        return None
    return (
        f"face detection fell back to {_WEAKER[detector]}: the MTCNN weights are not installed; "
        f"{_mtcnn.INSTALL_HINT} installs them"
    )


_noted: set[str] = set()


def check_detector(detector: str) -> str:
    """The detector a name asks for ("auto" resolved), refused when unknown or not installed.

    When `auto` falls back to a weaker detector, a warning says so once per process."""
    if detector == "auto":
        name = default_detector()
        note = fallback_note(name)
        if note is not None and name not in _noted:
            _noted.add(name)
            warn(note)
        return name
    if detector not in DETECTORS:
        raise UserError(f"unknown face detector {detector!r}; use one of {', '.join(DETECTORS)}")
    if detector == "mtcnn":
        _mtcnn.require_weights()
        load_mtcnn()  # hash-checked once
    else:
        from pixelsmith.faces import cascades

        (cascades._cv2 if detector == "haar" else cascades._lbp)()
    return detector


@cache
def _cached_mtcnn(device: str) -> _mtcnn.MTCNN:
    return _mtcnn.MTCNN().to(device)


def load_mtcnn(device: str | torch.device = "cpu") -> _mtcnn.MTCNN:
    """The shared MTCNN on a device (loaded and hash-checked once)."""
    return _cached_mtcnn(str(torch.device(device)))


def as_image(image: Any) -> Tensor:
    """A (C, H, W) float tensor in [0, 1] of any accepted input (see the module doc)."""
    if isinstance(image, Tensor):
        x = image[0] if image.dim() == 4 and image.shape[0] == 1 else image
        if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
            raise UserError(
                f"a face image tensor must be (C, H, W) or (1, C, H, W) with 1, 3 or 4 channels, "
                f"not {tuple(image.shape)}"
            )
        if not x.is_floating_point():
            raise UserError("a face image tensor must be float in [0, 1]; divide uint8 by 255")
        return x
    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image
        im = image if image.mode in ("L", "RGB", "RGBA") else image.convert("RGB")
        image = np.asarray(im)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise UserError(f"a face image array must be uint8 (H, W[, C]), not {image.dtype}")
        arr = image[..., None] if image.ndim == 2 else image
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise UserError(f"a face image array must be (H, W) or (H, W, C), not {image.shape}")
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255
    raise UserError(
        f"cannot find faces in a {type(image).__name__}; pass a tensor, PIL image or array"
    )


def _rgb(x: Tensor) -> Tensor:
    return x[:3] if x.shape[0] >= 3 else x[:1].expand(3, -1, -1)


def _uint8(x: Tensor) -> np.ndarray:
    """RGB (H, W, 3) or grey (H, W) uint8."""
    a = (x[:3] if x.shape[0] >= 3 else x[0]).clamp(0, 1).mul(255).round().to(torch.uint8)
    return a.permute(1, 2, 0).cpu().numpy() if a.dim() == 3 else a.cpu().numpy()


def _grey_uint8(x: Tensor) -> np.ndarray:
    g = luma(x[:3] if x.shape[0] >= 3 else x[:1])[0]
    return (g.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _clip(face: Face, w: int, h: int) -> Face:
    x0, y0, x1, y1 = face.box
    box = (min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h))
    return Face(box, face.score, face.landmarks, face.detector)  # type: ignore[arg-type]


def detect_faces(
    image: Any,
    detector: str = "auto",
    min_size: float = 20,
    threshold: float | None = None,
) -> list[Face]:
    """Faces in one image, best score first (see the module doc for inputs and scores)."""
    name = check_detector(detector)
    if not (min_size >= 1 and math.isfinite(min_size)):
        raise UserError(f"the minimum face size must be at least 1 pixel, not {min_size}")
    if threshold is not None and not math.isfinite(threshold):
        raise UserError(f"the score threshold must be a finite number, not {threshold}")
    x = as_image(image)
    _, h, w = x.shape
    if min_size > max(h, w):  # no face that large fits (and the cascades cannot be asked)
        return []
    if name == "mtcnn":
        net = load_mtcnn(x.device)
        t = _mtcnn.THRESHOLDS
        if threshold is not None:
            t = (t[0], t[1], float(threshold))
        boxes, scores, marks = net.detect(_rgb(x), min_size=min_size, thresholds=t)
        faces = [
            Face(tuple(b), s, tuple(tuple(p) for p in m), "mtcnn")  # type: ignore[arg-type]
            for b, s, m in zip(boxes.tolist(), scores.tolist(), marks.tolist(), strict=True)
        ]
    else:
        from pixelsmith.faces import cascades

        if name == "haar":
            faces = cascades.detect_haar(_grey_uint8(x), int(round(min_size)))
        else:
            faces = cascades.detect_lbp(_uint8(x), int(round(min_size)))
        if threshold is not None:
            faces = [f for f in faces if f.score >= threshold]
    faces = [_clip(f, w, h) for f in faces]
    return sorted(faces, key=lambda f: -f.score)


_COLOURS = {"mtcnn": (0, 255, 0), "haar": (255, 160, 0), "lbp": (0, 160, 255)}
_MARKS = ((255, 0, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255))


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def draw_faces(image: Any, faces: list[Face], width: int | None = None) -> Tensor:
    """The image (3, H, W) with each face's box, score and landmarks drawn on it.

    Boxes are coloured by detector (mtcnn green, haar orange, lbp blue); the landmarks are dots
    in LANDMARKS order: red, blue, yellow, magenta, cyan.
    """
    from PIL import Image, ImageDraw

    x = as_image(image)
    rgb = (_rgb(x).clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    draw = ImageDraw.Draw(im)
    line = width or max(1, round(max(im.size) / 300))
    font = _font(max(10, round(max(im.size) / 40)))
    for f in faces:
        colour = _COLOURS.get(f.detector, (0, 255, 0))
        draw.rectangle(f.box, outline=colour, width=line)
        label = f"{f.detector} {f.score:.2f}".strip()
        draw.text((f.box[0] + line + 1, f.box[1] + line), label, fill=colour, font=font)
        for (px, py), c in zip(f.landmarks or (), _MARKS, strict=False):
            r = line + 1
            draw.ellipse((px - r, py - r, px + r, py + r), fill=c)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255
