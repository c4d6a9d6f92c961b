"""The classical face detectors: OpenCV's Haar cascades and scikit-image's LBP cascade.

Both take a numpy image (see each function) and return `Face`s; both libraries are imported
only here, lazily, behind the `faces` extra.

- haar: `haarcascade_frontalface_default.xml` (scale step 1.1, 5 neighbours), scored by
  OpenCV's `detectMultiScale3` level weight (the last stage's summed weak-classifier votes: not
  a probability; about 2-8 on faces, higher is surer). The eye cascade (`haarcascade_eye.xml`)
  runs in the upper part of each face; when it finds one eye in each half, the face gets
  landmarks (the eyeglasses cascade is tried where the plain one misses an eye): those two
  eyes, and nose and mouth corners *estimated* from them by the alignment
  template (`pixelsmith.faces.align.landmarks_from_eyes`), so a five-point alignment of a Haar
  face is its eye alignment.
- lbp: scikit-image's `lbp_frontal_face_cascade_filename()` with `Cascade.detect_multi_scale`
  (scale step 1.2, exhaustive step, 4 neighbours). It reports no score: every face gets
  `LBP_SCORE` (1.0), and no landmarks.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch

from pixelsmith.errors import UserError
from pixelsmith.faces.nms import nms
from pixelsmith.faces.types import Face

EXTRA_HINT = "pip install 'pixelsmith[faces]'"
LBP_SCORE = 1.0
HAAR_SCALE, HAAR_NEIGHBOURS = 1.1, 5
LBP_SCALE, LBP_NEIGHBOURS = 1.2, 4
EYE_CASCADES = (("haarcascade_eye.xml", 3), ("haarcascade_eye_tree_eyeglasses.xml", 1))


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise UserError(
            f"the haar detector needs OpenCV (opencv-python-headless<5); install it with "
            f"{EXTRA_HINT}"
        ) from None
    if not hasattr(cv2, "data") or not hasattr(cv2, "CascadeClassifier"):
        raise UserError(
            f"this OpenCV ({getattr(cv2, '__version__', '?')}) ships no Haar cascades; "
            f"install opencv-python-headless<5 with {EXTRA_HINT}"
        )
    return cv2


def haar_available() -> bool:
    """Whether OpenCV with its Haar cascades can be imported."""
    try:
        _cv2()
    except UserError:
        return False
    return True


def lbp_available() -> bool:
    """Whether scikit-image (with its LBP cascade) can be imported."""
    try:
        _lbp()
    except UserError:
        return False
    return True


@cache
def _haar(name: str) -> Any:
    cv2 = _cv2()
    clf = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if clf.empty():
        raise UserError(f"OpenCV's cascade {name} is missing; reinstall it with {EXTRA_HINT}")
    return clf


@cache
def _lbp() -> Any:
    try:
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade
    except ImportError:
        raise UserError(
            f"the lbp detector needs scikit-image; install it with {EXTRA_HINT}"
        ) from None
    return Cascade(lbp_frontal_face_cascade_filename())


def _eyes(grey: np.ndarray, box: tuple[int, int, int, int]) -> tuple | None:
    """The two eye centres in a face box (image-left first), or None unless one per half.

    The eye cascade runs first; where it misses an eye (glasses often hide them from it), the
    eyeglasses cascade tries with a single neighbour. A candidate counts only with its centre in
    the band 15-55% down the face; the best level weight in each half wins.
    """
    x, y, w, h = box
    top = grey[y : y + int(h * 0.6), x : x + w]
    side = max(8, w // 8)
    best: dict[int, tuple[float, tuple[float, float]]] = {}
    for name, neighbours in EYE_CASCADES:
        rects, _, weights = _haar(name).detectMultiScale3(
            top,
            1.1,
            neighbours,
            minSize=(side, side),
            maxSize=(w // 2, w // 2),
            outputRejectLevels=True,
        )
        found: dict[int, tuple[float, tuple[float, float]]] = {}
        for (ex, ey, ew, eh), wt in zip(rects, weights, strict=True):
            cx, cy = ex + ew / 2, ey + eh / 2
            if not 0.15 * h < cy < 0.55 * h:
                continue
            half = 0 if cx < w / 2 else 1
            if half not in found or wt > found[half][0]:
                found[half] = (float(wt), (x + cx, y + cy))
        if len(found) == 2:
            best = found
            break
    if len(best) < 2:
        return None
    return best[0][1], best[1][1]


def detect_haar(grey: np.ndarray, min_size: int = 20, eyes: bool = True) -> list[Face]:
    """Faces found by OpenCV's frontal-face Haar cascade in a grey uint8 (H, W) image."""
    from pixelsmith.faces.align import landmarks_from_eyes

    m = max(1, int(round(min_size)))
    rects, _, weights = _haar("haarcascade_frontalface_default.xml").detectMultiScale3(
        grey,
        scaleFactor=HAAR_SCALE,
        minNeighbors=HAAR_NEIGHBOURS,
        minSize=(m, m),
        outputRejectLevels=True,
    )
    faces = []
    for (x, y, w, h), wt in zip(rects, weights, strict=True):
        marks = None
        found = _eyes(grey, (int(x), int(y), int(w), int(h))) if eyes else None
        if found is not None:
            marks = tuple(tuple(p) for p in landmarks_from_eyes(*found).tolist())
        box = (float(x), float(y), float(x + w), float(y + h))
        faces.append(Face(box, float(wt), marks, "haar"))  # type: ignore[arg-type]
    return faces


def detect_lbp(image: np.ndarray, min_size: int = 20) -> list[Face]:
    """Faces found by scikit-image's LBP cascade in a uint8 (H, W) grey or (H, W, 3) RGB image.

    Colour is left to scikit-image's own grey conversion (its rgb2gray), which the cascade's
    results depend on. Boxes that scikit-image's grouping leaves overlapping (more than half of
    the smaller one) are merged by NMS, keeping the larger.
    """
    h, w = image.shape[:2]
    m = max(1, int(round(min_size)))
    if min(h, w) < m:
        return []
    found = _lbp().detect_multi_scale(
        img=np.ascontiguousarray(image),
        scale_factor=LBP_SCALE,
        step_ratio=1,
        min_size=(m, m),
        max_size=(h, w),
        min_neighbor_number=LBP_NEIGHBOURS,
    )
    faces = []
    for d in found:
        x, y = float(d["c"]), float(d["r"])
        box = (x, y, x + float(d["width"]), y + float(d["height"]))
        faces.append(Face(box, LBP_SCORE, None, "lbp"))
    if len(faces) < 2:
        return faces
    boxes = torch.tensor([f.box for f in faces], dtype=torch.float64)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return [faces[i] for i in nms(boxes, area, 0.5, mode="min").tolist()]
