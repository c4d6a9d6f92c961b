"""Image files in and out, and sample grids: float32 NCHW in [0, 1] at the boundary."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelsmith.errors import UserError


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, fill: float = 1.0):
    """Tile an (N, C, H, W) batch into one (C, H', W') image with `pad` pixels between tiles."""
    if images.ndim != 4:
        raise ValueError(f"make_grid expects NCHW, got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    grid = torch.full((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), fill, dtype=images.dtype)
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, y : y + h, x : x + w] = images[i]
    return grid


def to_pil(image: torch.Tensor) -> Image.Image:
    """Convert one (C, H, W) float image in [0, 1] to a Pillow image (L, RGB or RGBA), rounding."""
    if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected (C, H, W) with C in 1, 3, 4; got {tuple(image.shape)}")
    arr = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0], mode="L")
    return Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to a temporary file, fsync it, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_image(image: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """Save a (C, H, W) image, or an (N, C, H, W) batch as a grid, to a PNG (atomically)."""
    import io

    if image.ndim == 4:
        image = make_grid(image, nrow=nrow)
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_images(images: torch.Tensor, folder: str | os.PathLike, prefix: str = "") -> list[Path]:
    """Save each image of an (N, C, H, W) batch as its own PNG in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(images) - 1)))
    return [save_image(img, folder / f"{prefix}{i:0{width}d}.png") for i, img in enumerate(images)]


def load_image(path: str | os.PathLike, channels: int = 3) -> torch.Tensor:
    """Load an image file as a (1, C, H, W) float tensor in [0, 1] with 1, 3 or 4 channels."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise UserError(f"channels must be 1, 3 or 4, got {channels}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                im = Image.fromarray((np.asarray(im, dtype=np.uint32) >> 8).astype(np.uint8))
            arr = np.asarray(im.convert(mode))
    except FileNotFoundError:
        raise UserError(f"image {path} does not exist; check the path") from None
    except OSError as e:
        raise UserError(
            f"cannot read image {path} ({e}); pass a PNG, JPEG, WebP, BMP or TIFF"
        ) from None
    t = torch.from_numpy(arr.copy())
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return t[None].float() / 255.0
