"""Procedural coloured shapes on solid or gradient backgrounds: a labelled toy set made on the fly.

Every per-image parameter is drawn from its own seeded stream, so the first ``n`` images of a
larger set are bit-identical to a set of ``n`` images with the same seed and split. Edges are
anti-aliased from an (approximate) signed distance in pixels; each shape is drawn in its own
rotated frame, and only for the images that carry its label.
"""

from __future__ import annotations

import numpy as np

SHAPE_CLASSES: list[str] = ["circle", "square", "triangle", "ellipse", "star"]
DEFAULT_COUNTS: dict[str, int] = {"train": 2000, "test": 500}
_SPLIT_IDS = {"train": 0, "test": 1}
_CHUNK_PIXELS = 1_000_000  # pixels rendered at once, bounding memory for large sizes


def _stream(seed: int, split: str, name: str) -> np.random.Generator:
    """An independent generator per (seed, split, parameter name)."""
    key = [int(seed) % 2**64, _SPLIT_IDS[split], *name.encode()]
    return np.random.default_rng(key)


def _draw_params(n: int, h: int, w: int, seed: int, split: str) -> dict[str, np.ndarray]:
    """Per-image parameters; each array's first m rows do not depend on n."""
    k = len(SHAPE_CLASSES)
    nblocks = -(-n // k)
    s = min(h, w)

    def u(name: str, *shape: int) -> np.ndarray:
        return _stream(seed, split, name).random((n, *shape))

    labels = np.argsort(_stream(seed, split, "labels").random((nblocks, k)), axis=1).ravel()[:n]
    radius = (0.22 + 0.18 * u("radius")) * s
    cx = radius + u("cx") * np.maximum(w - 2 * radius, 0)
    cy = radius + u("cy") * np.maximum(h - 2 * radius, 0)
    bg1 = np.floor(u("bg1", 3) * 256)
    bg2 = np.where(
        u("gradient")[:, None] < 0.5, bg1, np.clip(bg1 + (u("bg2", 3) - 0.5) * 160, 0, 255)
    )
    fg = np.floor(u("fg", 3) * 256)
    close = np.abs(fg - (bg1 + bg2) / 2).mean(axis=1) < 96
    fg[close] = (fg[close] + 128) % 256
    return {
        "labels": labels.astype(np.int64),
        "radius": radius,
        "cx": cx,
        "cy": cy,
        "angle": u("angle") * 2 * np.pi,
        "aspect": 0.45 + 0.2 * u("aspect"),
        "gdir": u("gdir") * 2 * np.pi,
        "bg1": bg1,
        "bg2": bg2,
        "fg": fg,
    }


def _col(a: np.ndarray) -> np.ndarray:
    """Per-image values (B,) shaped (B, 1, 1) to broadcast over pixels."""
    return a[:, None, None]


def _polygon(ux: np.ndarray, uy: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    """Signed distance to a regular k-gon of circumradius r with a vertex on the +x axis."""
    d = np.full(ux.shape, -np.inf)
    for j in range(k):
        t = np.pi / k + 2 * np.pi * j / k
        d = np.maximum(d, ux * np.cos(t) + uy * np.sin(t))
    return d - r * np.cos(np.pi / k)


def _circle(ux: np.ndarray, uy: np.ndarray, r: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """Signed distance to a circle of radius r."""
    return np.sqrt(ux * ux + uy * uy) - r


def _square(ux: np.ndarray, uy: np.ndarray, r: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """Signed distance to a square of half-side 0.8 r."""
    qx, qy = np.abs(ux) - 0.8 * r, np.abs(uy) - 0.8 * r
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _triangle(ux: np.ndarray, uy: np.ndarray, r: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """Signed distance to an equilateral triangle of circumradius r."""
    return _polygon(ux, uy, r, 3)


def _ellipse(ux: np.ndarray, uy: np.ndarray, r: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """Approximate signed distance (f / |grad f|) to an ellipse with semi-axes r and aspect * r."""
    a, b = r, r * aspect
    f = (ux / a) ** 2 + (uy / b) ** 2 - 1
    return f / (2 * np.sqrt((ux / a**2) ** 2 + (uy / b**2) ** 2) + 1e-9)


def _star(ux: np.ndarray, uy: np.ndarray, r: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """Signed distance to a five-point star (inner radius 0.42 r), folded into one half-sector."""
    sector = 2 * np.pi / 5
    phi = np.abs(np.mod(np.arctan2(uy, ux) + sector / 2, sector) - sector / 2)
    rho = np.sqrt(ux * ux + uy * uy)
    qx, qy = rho * np.cos(phi) - r, rho * np.sin(phi)  # relative to the tip A = (r, 0)
    ex, ey = 0.42 * r * np.cos(sector / 2) - r, 0.42 * r * np.sin(sector / 2)  # B - A
    t = np.clip((qx * ex + qy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    dist = np.sqrt((qx - t * ex) ** 2 + (qy - t * ey) ** 2)
    return np.where(ex * qy - ey * qx > 0, -dist, dist)


_SDFS = (_circle, _square, _triangle, _ellipse, _star)  # in SHAPE_CLASSES order


def _sdf(px: np.ndarray, py: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """Signed distance (pixels, negative inside) of each image's shape, chosen by its label."""
    out = np.empty((len(p["labels"]), *px.shape[1:]))
    for k, fn in enumerate(_SDFS):
        idx = np.flatnonzero(p["labels"] == k)
        if idx.size == 0:
            continue
        c, s = np.cos(p["angle"][idx]), np.sin(p["angle"][idx])
        dx, dy = px - _col(p["cx"][idx]), py - _col(p["cy"][idx])
        ux, uy = dx * _col(c) + dy * _col(s), dy * _col(c) - dx * _col(s)
        out[idx] = fn(ux, uy, _col(p["radius"][idx]), _col(p["aspect"][idx]))
    return out


def _render(p: dict[str, np.ndarray], h: int, w: int) -> np.ndarray:
    """Render a chunk of images as uint8 (B, H, W, 3)."""
    py, px = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    px, py = px[None], py[None]
    cover = np.clip(0.5 - _sdf(px, py, p), 0.0, 1.0)[..., None]
    gx, gy = np.cos(p["gdir"])[:, None, None], np.sin(p["gdir"])[:, None, None]
    proj = ((px / w - 0.5) * gx + (py / h - 0.5) * gy) * np.sqrt(0.5) + 0.5
    t = np.clip(proj, 0.0, 1.0)[..., None]
    bg = p["bg1"][:, None, None, :] * (1 - t) + p["bg2"][:, None, None, :] * t
    img = bg * (1 - cover) + p["fg"][:, None, None, :] * cover
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def generate_shapes(
    n: int, size: tuple[int, int] = (32, 32), seed: int = 0, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Make n shape images as uint8 (n, H, W, 3) with int64 labels indexing SHAPE_CLASSES."""
    h, w = size
    p = _draw_params(n, h, w, seed, split)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    step = max(1, _CHUNK_PIXELS // (h * w))
    for i in range(0, n, step):
        out[i : i + step] = _render({k: v[i : i + step] for k, v in p.items()}, h, w)
    return out, p["labels"]
