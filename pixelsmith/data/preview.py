"""Preview grids of a data set, optionally beside their augmented versions."""

from __future__ import annotations

from pathlib import Path

import torch

from pixelsmith.config import apply_overrides
from pixelsmith.errors import UserError
from pixelsmith.imageio import save_image
from pixelsmith.utils.rng import BatchRandom

SHOWCASE = dict(flip_p=0.5, crop_p=0.5, rotate_p=0.5, scale_p=0.5, color_p=0.5)


def preview(
    source: str,
    out: str | Path,
    n: int = 32,
    split: str = "train",
    augment: bool = False,
    diffaugment: str | None = None,
    seed: int = 0,
    overrides: list[str] = (),
) -> Path:
    """Write a grid of n images; with augment/diffaugment each image is followed by its variants."""
    from pixelsmith.data.augment import Augment, AugmentConfig, DiffAugment
    from pixelsmith.data.sources import load_images

    if n <= 0:
        raise UserError(f"-n must be a positive number of images, got {n}")
    data = load_images(source, split, limit=None, seed=seed)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[:n]
    x = data.images[idx].float() / 255.0
    columns = [x]
    if augment or overrides:
        cfg = AugmentConfig(**SHOWCASE) if not overrides else AugmentConfig()
        apply_overrides(cfg, list(overrides))
        cfg.__post_init__()
        columns.append(Augment(cfg)(x, BatchRandom(seed)))
    if diffaugment:
        aug = DiffAugment(diffaugment)(x * 2 - 1, BatchRandom(seed + 1))
        columns.append(((aug + 1) / 2).clamp(0, 1))
    k = len(columns)
    tiles = torch.stack(columns, dim=1).reshape(-1, *x.shape[1:])
    nrow = 8 if k == 1 else k * max(1, 8 // k)
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"output {out} must be a .png file")
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_image(tiles, out, nrow=nrow)
