"""Random square patches cropped from photographs at (nearly) their own resolution.

Restoration models learn local statistics, so they train on crops, never on whole photos resized
to one size. Each photo is first brought to a pyramid of working sizes (its short side scaled to
each of `SHORT_SIDES` that is smaller than it, with Pillow's LANCZOS, plus the photo itself when
its short side is at most the largest of them): a 5K wallpaper scaled down has the detail density
of an ordinary photo, and its JPEG blocking is gone. Patches are spread evenly over the
(photo, level) pairs at uniform random positions drawn from numpy's PCG64 with the given seed.
Photos go through the guarded reader (`pixelsmith.imageio.read_natural`); alpha is dropped and
grey photos repeat to RGB when RGB is asked (RGB -> grey is Pillow's luma).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from pixelsmith.errors import UserError, warn
from pixelsmith.imageio import ImageReadError, read_natural

SHORT_SIDES: tuple[int, ...] = (480, 960)


def _levels(arr: np.ndarray, size: int) -> list[np.ndarray]:
    """The photo at each working size (see the module docstring) that holds a whole patch."""
    h, w = arr.shape[:2]
    short = min(h, w)
    out = [arr] if short <= max(SHORT_SIDES) else []
    mode = {1: "L", 3: "RGB"}[arr.shape[2]]
    for side in SHORT_SIDES:
        if side < short:
            f = side / short
            im = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
            im = im.resize((round(w * f), round(h * f)), Image.Resampling.LANCZOS)
            small = np.asarray(im)
            out.append(small[..., None] if small.ndim == 2 else small)
    return [a for a in out if min(a.shape[:2]) >= size]


def _channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W, C) photo as grey (Pillow luma) or RGB, alpha dropped."""
    if arr.shape[2] in (2, 4):
        arr = arr[..., :-1]
    if channels == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if channels == 1 and arr.shape[2] == 3:
        r, g, b = (arr[..., i].astype(np.uint32) for i in range(3))
        return ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16).astype(np.uint8)[..., None]
    return arr


def crop_patches(
    paths: list[Path], n: int, size: int, seed: int = 0, channels: int = 3
) -> np.ndarray:
    """`n` random size x size patches from the photos, uint8 (n, channels, size, size)."""
    if n <= 0 or size <= 0:
        raise UserError(f"need a positive patch count and size, got {n} patches of {size}")
    levels, skipped = [], []
    for p in paths:
        try:
            arr, _ = read_natural(p)
        except ImageReadError as e:
            skipped.append(str(e))
            continue
        levels += _levels(_channels(arr, channels), size)
    if skipped:
        warn(f"skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
    if not levels:
        raise UserError(f"no photo among {len(paths)} is at least {size}x{size} pixels")
    rng = np.random.Generator(np.random.PCG64(seed))
    owner = rng.permutation(np.arange(n) % len(levels))
    out = np.empty((n, channels, size, size), np.uint8)
    for i, k in enumerate(owner):
        a = levels[k]
        y = int(rng.integers(0, a.shape[0] - size + 1))
        x = int(rng.integers(0, a.shape[1] - size + 1))
        out[i] = a[y : y + size, x : x + size].transpose(2, 0, 1)
    return out


def centre_crop(arr: np.ndarray, size: int) -> np.ndarray:
    """The central size x size crop of an (H, W, C) array (the whole side when smaller)."""
    h, w = arr.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return arr[y : y + size, x : x + size]


def files_key(paths: list[Path], *params: object) -> str:
    """A cache key over the files' paths, sizes and mtimes and the given parameters."""
    h = hashlib.sha256(repr(params).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
