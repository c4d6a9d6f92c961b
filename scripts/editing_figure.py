"""docs/editing.png: each editing operation on a hold-out photo, the input, the classical
answer, pixelsmith's, and the truth, side by side (128x128 crops shown 2x); the textured
inpainting row puts the default model where the classical answer goes.

    python scripts/editing_figure.py [-o docs/editing.png]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image, ImageDraw

from pixelsmith.data import degrade
from pixelsmith.data.patches import centre_crop
from pixelsmith.data.photos import holdout_photos
from pixelsmith.edit import classical, ops
from pixelsmith.imageio import read_natural
from pixelsmith.utils.rng import BatchRandom

SIDE = 128


def crop(name: str) -> torch.Tensor:
    arr, _ = read_natural(holdout_photos((name,))[name])
    arr = centre_crop(arr[..., :3], 2 * SIDE)
    arr = np.asarray(Image.fromarray(arr).resize((2 * SIDE, 2 * SIDE)))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def nlm(x: torch.Tensor) -> torch.Tensor:
    """scikit-image's non-local means, as bench/editing.py runs it."""
    from skimage.restoration import denoise_nl_means, estimate_sigma

    arr = x.permute(1, 2, 0).double().numpy()
    sigma = float(np.mean(estimate_sigma(arr, channel_axis=-1)))
    kw = {"patch_size": 5, "patch_distance": 6, "fast_mode": True, "channel_axis": -1}
    out = denoise_nl_means(arr, h=0.8 * sigma, sigma=sigma, **kw)
    return torch.from_numpy(out).permute(2, 0, 1).float()


def rows() -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
    """(operation, [(caption, image)]) per row."""
    out = []
    hr = crop("motorcycle")[:, 40 : 40 + SIDE, 100 : 100 + SIDE]
    lr = degrade.bicubic_down(hr[None], 2)[0]
    out.append(
        (
            "SR x2",
            [
                ("input", torch.nn.functional.interpolate(lr[None], scale_factor=2)[0]),
                ("bicubic", degrade.imresize(lr[None], scale=2)[0].clamp(0, 1)),
                ("pixelsmith", ops.super_resolve(lr, 2)),
                ("truth", hr),
            ],
        )
    )
    hr = crop("astronaut")[:, 64 : 64 + SIDE, 64 : 64 + SIDE]
    lr = degrade.bicubic_down(hr[None], 4)[0]
    near = torch.nn.functional.interpolate(lr[None], scale_factor=4)[0]
    bic = degrade.imresize(lr[None], scale=4)[0].clamp(0, 1)
    out.append(
        (
            "SR x4",
            [
                ("input", near),
                ("bicubic", bic),
                ("pixelsmith", ops.super_resolve(lr, 4)),
                ("truth", hr),
            ],
        )
    )
    clean = crop("coffee")[:, 60 : 60 + SIDE, 90 : 90 + SIDE]
    g = torch.Generator().manual_seed(0)
    noisy = (clean + 25 / 255 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    out.append(
        (
            "denoise, sigma 25",
            [
                ("input", noisy),
                ("NLM (scikit-image)", nlm(noisy)),
                ("pixelsmith", ops.denoise(noisy)),
                ("truth", clean),
            ],
        )
    )
    clean = crop("chelsea")[:, 40 : 40 + SIDE, 80 : 80 + SIDE]
    mask = degrade.masks_with_coverage(1, SIDE, SIDE, BatchRandom(1), coverage=(0.2, 0.3))[0]
    holed = clean * (1 - mask) + mask
    fill = classical.telea_fill(clean * (1 - mask), mask)
    learned = ops.inpaint(clean * (1 - mask), mask)
    out.append(
        (
            "inpaint, 25% holes",
            [
                ("input", holed),
                ("Telea", fill),
                ("pixelsmith", learned),
                ("truth", clean),
            ],
        )
    )
    out.append(
        (
            "inpaint --method texture",
            [
                ("input", holed),
                ("pixelsmith (default)", learned),
                ("pixelsmith texture", ops.inpaint(clean * (1 - mask), mask, method="texture")),
                ("truth", clean),
            ],
        )
    )
    clean = crop("rocket")[:, 100 : 100 + SIDE, 60 : 60 + SIDE]
    dark = degrade.LowLight(gain=(0.12, 0.12), gamma=(1.8, 1.8), noise=(0.01, 0.01))(
        clean[None], BatchRandom(0)
    )[0]
    both = classical.enhance_classical(dark, ["autocontrast", "gamma"])
    out.append(
        (
            "low light",
            [
                ("input", dark),
                ("autocontrast+gamma", both),
                ("pixelsmith", ops.enhance(dark)),
                ("truth", clean),
            ],
        )
    )
    return out  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="docs/editing.png")
    args = ap.parse_args()
    cell, pad, top = 2 * SIDE, 6, 18
    table = rows()
    canvas = Image.new(
        "RGB", (4 * (cell + pad) + pad, len(table) * (cell + top + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for r, (op, cells) in enumerate(table):
        y = pad + r * (cell + top + pad)
        for c, (caption, img) in enumerate(cells):
            x = pad + c * (cell + pad)
            arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            canvas.paste(
                Image.fromarray(arr).resize((cell, cell), Image.Resampling.NEAREST), (x, y + top)
            )
            draw.text((x, y + 3), f"{op}: {caption}" if c == 0 else caption, fill="black")
    canvas.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
