"""Aligned face crops: a similarity transform that puts the landmarks on a fixed template.

The template is the widely used 5-point one of the ArcFace 112x112 crops (insightface), made
mirror-symmetric (eyes level at the same height, nose on the vertical centre line) so that
"aligned" means exactly "eyes level". `padding` adds a margin of that fraction of the template's
side on each edge, shrinking the face within the crop (0.25 shows the whole head and some
background, handy for editing).

The fit is Umeyama's least-squares similarity (rotation, uniform scale, translation; no
reflection) of the landmarks onto the template: all five by default, or just the two eyes
(`points="eyes"`, which puts the eyes exactly on their template positions). A face with no
landmarks (e.g. from the LBP detector) is aligned from its box: the landmarks are placed at their
average positions within that detector's box (`BOX_LANDMARKS`), so the crop is upright and
scaled, not rotated.

Matrices are (2, 3) float64 tensors in the convention of OpenCV's warpAffine: they map a point
(x, y) of the image to (x', y') of the crop, in continuous pixel coordinates (pixel (i, j) covers
[j, j+1) x [i, i+1)). `invert_affine` gives the way back and `paste_back` uses it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.faces.types import Face

# ArcFace's template (pixels of a 112x112 crop), symmetrised about x = 56: eye, nose and mouth
# x offsets are the means of the left/right ones, the y's the means of each pair.
_ARCFACE = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366))
_EYE_HALF = (_ARCFACE[1][0] - _ARCFACE[0][0]) / 2
_MOUTH_HALF = (70.7299 - 41.5493) / 2
_EYE_Y, _MOUTH_Y = (51.6963 + 51.5014) / 2, (92.3655 + 92.2041) / 2
TEMPLATE = tuple(
    (x / 112, y / 112)
    for x, y in (
        (56 - _EYE_HALF, _EYE_Y),
        (56 + _EYE_HALF, _EYE_Y),
        (56, 71.7366),
        (56 - _MOUTH_HALF, _MOUTH_Y),
        (56 + _MOUTH_HALF, _MOUTH_Y),
    )
)
# Where the five landmarks lie, on average, inside a detector's box, as fractions of its width
# and height: MTCNN's landmarks inside the Haar and LBP boxes of the same faces (the 100
# lfw_subset faces and the three one-face photos; `bench/faces_detect.py`, ~100 faces each),
# made mirror-symmetric about the box's centre line. Other boxes (a user's) take LBP's.
BOX_LANDMARKS = {
    "haar": ((0.315, 0.39), (0.685, 0.39), (0.5, 0.61), (0.34, 0.795), (0.66, 0.795)),
    "lbp": ((0.31, 0.38), (0.69, 0.38), (0.5, 0.60), (0.335, 0.805), (0.665, 0.805)),
}
MIN_SIZE = 16
POINTS = ("all", "eyes")


def template(size: int = 112, padding: float = 0.0) -> Tensor:
    """The five template points (5, 2) in pixels of a size x size crop with this padding."""
    t = torch.tensor(TEMPLATE, dtype=torch.float64)
    return (t + padding) / (1 + 2 * padding) * size


def umeyama(src: Tensor, dst: Tensor) -> Tensor:
    """The least-squares similarity (2, 3) taking points src (N, 2) to dst (N, 2); N >= 2."""
    src, dst = src.double(), dst.double()
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, s, vt = torch.linalg.svd(cov)
    d = torch.ones(2, dtype=torch.float64)
    if torch.det(u) * torch.det(vt) < 0:
        d[1] = -1
    rot = u @ torch.diag(d) @ vt
    var = xs.pow(2).sum(1).mean()
    if var <= 0:
        raise UserError("cannot align a face whose landmarks all lie on one point")
    scale = (s * d).sum() / var
    shift = mu_d - scale * rot @ mu_s
    return torch.cat([scale * rot, shift[:, None]], 1)


def apply_affine(matrix: Tensor, points: Tensor) -> Tensor:
    """Points (N, 2) moved by a (2, 3) matrix."""
    m = matrix.to(torch.float64)
    return points.to(torch.float64) @ m[:, :2].T + m[:, 2]


def invert_affine(matrix: Tensor) -> Tensor:
    """The (2, 3) matrix of the inverse map."""
    full = torch.eye(3, dtype=torch.float64)
    full[:2] = matrix.to(torch.float64)
    return torch.linalg.inv(full)[:2]


def landmarks_from_box(box: tuple[float, float, float, float], detector: str = "") -> Tensor:
    """The average landmark positions (5, 2) inside a detector's box (see BOX_LANDMARKS)."""
    x0, y0, x1, y1 = box
    rel = torch.tensor(BOX_LANDMARKS.get(detector, BOX_LANDMARKS["lbp"]), dtype=torch.float64)
    return torch.stack([x0 + rel[:, 0] * (x1 - x0), y0 + rel[:, 1] * (y1 - y0)], 1)


def landmarks_from_eyes(left: tuple[float, float], right: tuple[float, float]) -> Tensor:
    """Five landmarks (5, 2) from the two eyes: the template's nose and mouth, placed by them."""
    t = template()
    m = umeyama(t[:2], torch.tensor([left, right], dtype=torch.float64))
    return apply_affine(m, t)


def _image3(image: Tensor) -> Tensor:
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3:
        raise UserError(f"expected an image tensor (C, H, W) or (1, C, H, W), got {image.shape}")
    return image


def alignment_matrix(
    face: Face, size: int = 112, padding: float = 0.0, points: str = "all"
) -> Tensor:
    """The (2, 3) image-to-crop similarity for a face (see the module doc)."""
    if points not in POINTS:
        raise UserError(f"unknown landmark choice {points!r}; use one of {', '.join(POINTS)}")
    if face.landmarks is not None:
        src = torch.tensor(face.landmarks, dtype=torch.float64)
    else:
        src = landmarks_from_box(face.box, face.detector)
    dst = template(size, padding)
    if points == "eyes":
        src, dst = src[:2], dst[:2]
    return umeyama(src, dst)


def warp_affine(
    image: Tensor, matrix: Tensor, size: tuple[int, int], border: str = "border"
) -> Tensor:
    """The (C, h, w) picture of image (C, H, W) under matrix (image -> output), bilinear.

    When the map shrinks the image by more than 2x, it is first area-averaged to about the
    output's scale, so that the result does not alias. `border` is grid_sample's padding mode
    (border, zeros or reflection) for the output pixels that fall outside the image.
    """
    image = _image3(image)
    m = matrix.to(torch.float64)
    _, big_h, big_w = image.shape
    shrink = math.sqrt(abs(float(torch.det(m[:, :2]))))
    src = image.float()
    if shrink < 0.5:
        h2 = max(1, math.ceil(big_h * shrink * 2))
        w2 = max(1, math.ceil(big_w * shrink * 2))
        src = F.interpolate(src[None], size=(h2, w2), mode="area")[0]
        m = m @ torch.tensor(
            [[big_w / w2, 0, 0], [0, big_h / h2, 0], [0, 0, 1]], dtype=torch.float64
        )
    _, h, w = src.shape
    out_h, out_w = size
    inv = invert_affine(m)
    ys, xs = torch.meshgrid(
        torch.arange(out_h, dtype=torch.float64) + 0.5,
        torch.arange(out_w, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    at = apply_affine(inv, torch.stack([xs.reshape(-1), ys.reshape(-1)], 1))
    grid = torch.stack([at[:, 0] * (2 / w) - 1, at[:, 1] * (2 / h) - 1], 1)
    grid = grid.view(1, out_h, out_w, 2).to(src.device, src.dtype)
    out = F.grid_sample(src[None], grid, mode="bilinear", padding_mode=border, align_corners=False)
    return out[0]


def align_face(
    image: Tensor,
    face: Face,
    size: int = 112,
    padding: float = 0.0,
    points: str = "all",
    border: str = "border",
) -> tuple[Tensor, Tensor]:
    """An aligned (C, size, size) crop of a face, and the (2, 3) image-to-crop matrix.

    `points="all"` fits the five landmarks, `"eyes"` the eyes only; a face without landmarks is
    placed by its box. Outside the image the crop repeats the edge pixels (`border`).
    """
    if int(size) != size or size < MIN_SIZE:
        raise UserError(f"the aligned face size must be a whole number >= {MIN_SIZE}, not {size}")
    if not 0 <= padding <= 2:
        raise UserError(
            f"the padding must be between 0 and 2 (a fraction of the side), not {padding}"
        )
    matrix = alignment_matrix(face, int(size), padding, points)
    return warp_affine(image, matrix, (int(size), int(size)), border), matrix


def paste_back(image: Tensor, crop: Tensor, matrix: Tensor, feather: float = 0.0) -> Tensor:
    """The image (C, H, W) with an (edited) crop put back where `matrix` took it from.

    The crop's edge is blended over `feather` crop pixels (0: a one-pixel bilinear edge only);
    pixels the crop does not cover are returned unchanged.
    """
    image = _image3(image)
    crop = _image3(crop)
    _, big_h, big_w = image.shape
    _, ch, cw = crop.shape
    m = matrix.to(torch.float64)
    corners = torch.tensor([[0, 0], [cw, 0], [0, ch], [cw, ch]], dtype=torch.float64)
    span = apply_affine(invert_affine(m), corners)
    x0, y0 = span.min(0).values.floor().long().tolist()
    x1, y1 = span.max(0).values.ceil().long().tolist()
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, big_w), min(y1, big_h)
    out = image.clone()
    if x1 <= x0 or y1 <= y0:
        return out
    alpha = torch.ones(1, ch, cw, dtype=crop.dtype, device=crop.device)
    if feather > 0:
        yy = torch.arange(ch, dtype=crop.dtype, device=crop.device) + 0.5
        xx = torch.arange(cw, dtype=crop.dtype, device=crop.device) + 0.5
        ramp_y = torch.minimum(yy, ch - yy).clamp(max=feather) / feather
        ramp_x = torch.minimum(xx, cw - xx).clamp(max=feather) / feather
        alpha = (ramp_y[:, None] * ramp_x[None, :])[None]
    shift = torch.tensor([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=torch.float64)
    back = invert_affine(m @ shift)  # crop -> the region's own pixel frame
    both = torch.cat([crop.to(image.dtype), alpha.to(image.dtype)])
    region = warp_affine(both, back, (y1 - y0, x1 - x0), border="zeros")
    a = region[-1:].clamp(0, 1).to(image.device)
    out[:, y0:y1, x0:x1] = image[:, y0:y1, x0:x1] * (1 - a) + region[:-1].to(image.device) * a
    return out
