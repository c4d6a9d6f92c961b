"""A weight-free face matcher: LBP histograms (LBPH) compared by chi-square distance.

No face-recognition weights exist offline, so identity checks use the classic descriptor of
Ahonen, Hadid and Pietikäinen (TPAMI 2006): uniform LBP codes (8 neighbours on a circle of
radius 2, bilinear samples, the 59 "nri_uniform" labels of scikit-image), computed on the crop
resized to 64x64 grey and quantised to 8 bits, counted in a 7x7 grid of cells; each cell's
histogram is normalised to sum 1 and the 49 histograms are concatenated.

Two descriptors are compared by the chi-square distance
`d = sum_i (a_i - b_i)^2 / (a_i + b_i)` (0 where both bins are empty), which lies in
[0, 2 * cells] for cell-normalised histograms; the similarity is `1 - d / (2 * cells)`: 1 for
identical histograms, 0 when no cell shares a single code. Unweighted (Ahonen's weighted
variant needs aligned faces with known eye positions).

Measured on lfw_subset (bench/faces_match.py, bench/results/faces_match.json): a crop against
a re-captured copy of itself (small rotation, scale, shift, brightness, contrast, gamma, noise,
JPEG) vs against the other 99 faces: ROC AUC 1.000 (mild) / 0.9996 (strong), EER 0 / 1%;
`THRESHOLD_FAR_1PCT` below. Gaussian blur of sigma 8% of the crop width, or pixelation in
blocks of 1/8 of it, already falls under that threshold for every face.

What it measures: how much of a face's local texture layout survives, which is what
anonymisation must destroy. It is not a face-recognition model: on re-captures of one photo it
separates "same crop" from "other face" well (bench/faces_match.py), but across different
photos of one person it is far weaker than a learned embedding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.utils.colour import luma

POINTS = 8
RADIUS = 2
SIZE = 64
GRID = 7
# The similarity above which 1% of different-face pairs fall (bench/faces_match.py: lfw_subset,
# re-captured copies vs other faces, "mild" strength; 0.514 at "strong"). An anonymised crop
# below it is no more like its original than another person's face usually is.
THRESHOLD_FAR_1PCT = 0.543


def n_codes(points: int = POINTS, method: str = "nri_uniform") -> int:
    """How many labels `lbp_codes` gives: P(P-1)+3 for nri_uniform, P+2 for uniform."""
    return points * (points - 1) + 3 if method == "nri_uniform" else points + 2


def _neighbours(img: Tensor, radius: float, points: int) -> Tensor:
    """(P, N, H, W) bilinear samples on the circle, 0 outside, as scikit-image computes them."""
    n, h, w = img.shape
    angles = 2 * math.pi * torch.arange(points, dtype=torch.float64) / points
    # scikit-image rounds the offsets to 5 decimals; the same float64 steps follow
    rp = torch.round(-radius * torch.sin(angles), decimals=5)
    cp = torch.round(radius * torch.cos(angles), decimals=5)
    rows = torch.arange(h, dtype=torch.float64)
    cols = torch.arange(w, dtype=torch.float64)
    padded = F.pad(img, (1, 1, 1, 1)).reshape(n, -1)  # a zero ring gives the 'constant 0' mode
    out = []
    for dr_, dc_ in zip(rp.tolist(), cp.tolist(), strict=True):
        r = rows + dr_
        c = cols + dc_
        r0, c0 = torch.floor(r), torch.floor(c)
        r1, c1 = torch.ceil(r), torch.ceil(c)
        fr = (r - r0)[:, None]
        fc = (c - c0)[None, :]

        def pick(ri: Tensor, ci: Tensor) -> Tensor:
            ri = ri.long() + 1
            ci = ci.long() + 1
            inside_r = (ri >= 1) & (ri <= h)
            inside_c = (ci >= 1) & (ci <= w)
            ri = torch.where(inside_r, ri, 0)  # row 0 / column 0 of the padding hold zeros
            ci = torch.where(inside_c, ci, 0)
            idx = (ri[:, None] * (w + 2) + ci[None, :]).reshape(-1)
            return padded[:, idx].reshape(n, h, w)

        top = (1 - fc) * pick(r0, c0) + fc * pick(r0, c1)
        bottom = (1 - fc) * pick(r1, c0) + fc * pick(r1, c1)
        out.append((1 - fr) * top + fr * bottom)
    return torch.stack(out)


def lbp_codes(
    grey: Tensor, radius: float = RADIUS, points: int = POINTS, method: str = "nri_uniform"
) -> Tensor:
    """LBP labels (int64) of (H, W) or (N, H, W) grey images, equal to skimage's.

    `method` is "nri_uniform" (each uniform pattern its own label, 0 .. P(P-1)+2; Ahonen's u2)
    or "uniform" (rotation invariant: the number of ones, P+1 for non-uniform patterns).
    Neighbours outside the image count as 0, as in `skimage.feature.local_binary_pattern`.
    """
    if method not in ("nri_uniform", "uniform"):
        raise UserError(f"LBP method must be 'nri_uniform' or 'uniform', got {method!r}")
    if not 1 <= points <= 62 or not radius > 0:
        raise UserError(f"LBP needs 1-62 points and a positive radius, got {points}, {radius}")
    if grey.ndim not in (2, 3) or grey.shape[-1] == 0 or grey.shape[-2] == 0:
        raise UserError(f"LBP codes need a (H, W) or (N, H, W) grey image, got {tuple(grey.shape)}")
    img = grey.to(torch.float64)
    single = img.ndim == 2
    img = img[None] if single else img
    bits = _neighbours(img, float(radius), points) - img[None] >= 0  # (P, N, H, W)
    b = bits.to(torch.int64)
    changes = (b[1:] - b[:-1]).abs().sum(0)  # not circular, as scikit-image counts
    ones = b.sum(0)
    p = points
    if method == "uniform":
        codes = torch.where(changes <= 2, ones, p + 1)
    else:
        first_one = b.argmax(0)  # the first maximal index
        first_zero = (1 - b).argmax(0)
        rot = torch.where(first_one == 0, ones - first_zero, p - first_one)
        codes = 1 + (ones - 1) * p + rot
        codes = torch.where(ones == 0, 0, codes)
        codes = torch.where(ones == p, p * (p - 1) + 1, codes)
        codes = torch.where(changes <= 2, codes, p * (p - 1) + 2)
    return codes[0] if single else codes


def _as_batch(crops: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """Checked (C, H, W) crops from a (N, C, H, W) batch, one (C, H, W) crop or a list."""
    if isinstance(crops, Tensor):
        if crops.ndim == 3:
            items = [crops]
        elif crops.ndim == 4:
            items = list(crops)
        else:
            raise UserError(
                "face crops must be (C, H, W) or (N, C, H, W) tensors in [0, 1], "
                f"got shape {tuple(crops.shape)}"
            )
    else:
        items = list(crops)
    if not items:
        raise UserError("no face crops to describe: pass at least one (C, H, W) crop")
    for t in items:
        if not isinstance(t, Tensor) or t.ndim != 3 or t.shape[0] not in (1, 3, 4):
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise UserError(
                f"a face crop must be a (C, H, W) tensor with C = 1, 3 or 4, got {shape}"
            )
        if t.shape[1] < 2 or t.shape[2] < 2:
            raise UserError(f"a face crop must be at least 2x2 pixels, got {tuple(t.shape)}")
    return items


def _grey(crop: Tensor, size: int) -> Tensor:
    """(C, H, W) in [0, 1] -> (size, size) grey on the 0..255 integer scale (float64)."""
    x = crop.detach().float().cpu().clamp(0, 1)
    x = luma(x[:3] if x.shape[0] >= 3 else x[:1])  # alpha ignored
    if tuple(x.shape[1:]) != (size, size):
        x = F.interpolate(x[None], (size, size), mode="bilinear", antialias=True)[0]
    return (x[0].clamp(0, 1) * 255).round().to(torch.float64)


def _cell_index(n: int, grid: int) -> Tensor:
    """The grid cell (0 .. grid-1) of each of n positions: cells of near-equal length."""
    return torch.arange(n) * grid // n


def lbph(
    face_crop: Tensor | Sequence[Tensor],
    grid: int = GRID,
    size: int = SIZE,
    radius: float = RADIUS,
    points: int = POINTS,
) -> Tensor:
    """LBPH descriptor(s): (grid*grid*n_codes,) for one (C, H, W) crop, (N, D) for a batch.

    The crop is resized to size x size grey; pixels within `ceil(radius)` of the border, whose
    neighbours fall outside, are left out; each cell's histogram sums to 1.
    """
    single = isinstance(face_crop, Tensor) and face_crop.ndim == 3
    items = _as_batch(face_crop)
    margin = math.ceil(radius)
    if not isinstance(grid, int) or grid < 1 or size - 2 * margin < grid:
        raise UserError(
            f"the LBPH grid must be a positive integer with at least one pixel per cell "
            f"({size - 2 * margin} usable pixels), got {grid}"
        )
    grey = torch.stack([_grey(t, size) for t in items])
    codes = lbp_codes(grey, radius, points)[:, margin : size - margin, margin : size - margin]
    k = n_codes(points)
    n_in = size - 2 * margin
    cell = _cell_index(n_in, grid)
    cell_id = (cell[:, None] * grid + cell[None, :]).reshape(1, -1)
    flat = (cell_id * k + codes.reshape(len(items), -1)).long()
    hist = torch.zeros(len(items), grid * grid * k, dtype=torch.float64)
    hist.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    hist = hist.view(len(items), grid * grid, k)
    hist = (hist / hist.sum(-1, keepdim=True)).reshape(len(items), -1).float()
    return hist[0] if single else hist


def chi_square(a: Tensor, b: Tensor) -> Tensor:
    """Chi-square distance sum (a - b)^2 / (a + b) over the last axis (0/0 counts 0), broadcast."""
    s = a + b
    d = a - b
    return torch.where(s > 0, d * d / s.clamp_min(1e-30), 0).sum(-1)


def _cells(dim: int, points: int = POINTS) -> int:
    k = n_codes(points)
    if dim % k:
        raise UserError(f"an LBPH descriptor's length is a multiple of {k}, got {dim}")
    return dim // k


def similarity(a: Tensor, b: Tensor) -> float:
    """Similarity in [0, 1] of two LBPH descriptors: 1 - chi_square / (2 * cells)."""
    if a.ndim != 1 or a.shape != b.shape:
        raise UserError(
            f"similarity takes two LBPH descriptors of one length, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    return float(1 - chi_square(a.double(), b.double()) / (2 * _cells(a.numel())))


class FaceMatcher:
    """Compares face crops ((C, H, W) in [0, 1], any size) by their LBPH descriptors."""

    def __init__(
        self, size: int = SIZE, grid: int = GRID, radius: float = RADIUS, points: int = POINTS
    ):
        self.size, self.grid, self.radius, self.points = size, grid, radius, points
        lbph(torch.zeros(1, size, size), grid, size, radius, points)  # refuse bad settings now

    def embed(self, crops: Tensor | Sequence[Tensor]) -> Tensor:
        """(N, D) descriptors of a batch or list of crops (a single crop gives (1, D))."""
        out = lbph(_as_batch(crops), self.grid, self.size, self.radius, self.points)
        return out

    def similarity(self, a: Tensor, b: Tensor) -> float:
        """Similarity in [0, 1] of two (C, H, W) crops (1: identical texture layout)."""
        for name, t in (("first", a), ("second", b)):
            if not isinstance(t, Tensor) or t.ndim != 3:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise UserError(f"the {name} face crop must be a (C, H, W) tensor, got {shape}")
        ea, eb = self.embed([a, b])
        return similarity(ea, eb)

    def similarity_matrix(
        self, a: Tensor | Sequence[Tensor], b: Tensor | Sequence[Tensor] | None = None
    ) -> Tensor:
        """(N, M) similarities of crops a against crops b (b = a when omitted)."""
        ea = self.embed(a)
        eb = ea if b is None else self.embed(b)
        return similarity_matrix(ea, eb)


def similarity_matrix(a: Tensor, b: Tensor, chunk: int = 8) -> Tensor:
    """(N, M) similarities of two batches of LBPH descriptors, (N, D) and (M, D)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise UserError(
            f"similarity_matrix takes (N, D) and (M, D) descriptors, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    cells = _cells(a.shape[1])
    b = b.float()
    rows = []
    # float32 in small chunks: 6x faster than float64 in large ones, equal to 2e-6
    for part in a.float().split(chunk):
        s, d = part[:, None] + b[None], part[:, None] - b[None]
        rows.append((d * d / s.clamp_min(1e-30)).sum(-1))  # s = 0 only where d = 0
    return 1 - torch.cat(rows) / (2 * cells)
