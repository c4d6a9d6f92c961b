"""docs/protect.png: a hold-out photo protected at 8/255 against inpaint, sr and denoise; each
editor's output on the original and on the protected photo, and on the protected photo after each
counter-measure, every tile captioned with the MSE (on [-1, 1]) against the same edit of the
original (above 0.05 = disrupted, as bench/protect.py counts).

    python scripts/protect_figure.py [--photo coffee] [--size 192] [-o docs/protect.png]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image, ImageDraw

from pixelsmith.data.patches import centre_crop
from pixelsmith.data.photos import HOLDOUT, holdout_photos
from pixelsmith.imageio import read_natural
from pixelsmith.robust import editors as E

CELL, PAD, TOP = 192, 6, 30


def crop(name: str, size: int) -> torch.Tensor:
    """The photo's centre crop as (3, size, size) in [0, 1], grey repeated to RGB."""
    arr, _ = read_natural(holdout_photos((name,))[name])
    arr = arr[..., :-1] if arr.shape[2] in (2, 4) else arr
    arr = np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr
    return torch.from_numpy(np.ascontiguousarray(centre_crop(arr, size))).permute(2, 0, 1) / 255


def rows(x: torch.Tensor, steps: int, seed: int) -> list[list[tuple[str, torch.Tensor]]]:
    """[(caption, image)] per row: the inputs, then one row per editor."""
    p = E.protect(x[None], E.PROTECT_AGAINST, 8 / 255, steps, seed=seed)
    adv = p.image
    diff = ((adv - x[None]) * 255 / 16 + 0.5).clamp(0, 1)  # signed, eps at 0.5 +- 0.5
    cms = {"none": lambda v: v, **E.COUNTER_MEASURES}
    first = [("original", x), (f"protected, {float(p.psnr[0]):.1f} dB", adv[0]),
             ("change x 16, on grey", diff[0])]  # fmt: skip
    first += [(f"{c}(protected)", cms[c](adv)[0]) for c in E.COUNTER_MEASURES]
    out = [first]
    with torch.no_grad():
        for name, ed in p.editors.items():
            row = [(f"{name}: edit(original)", ed.edit(x[None])[0])]
            for c, cm in cms.items():
                clean, prot = ed.edit(cm(x[None])), ed.edit(cm(adv))
                mse = float(E.mse_pm1(prot, clean)[0])
                flag = "DISRUPTED" if mse > E.DISRUPTED_MSE else "not disrupted"
                what = "edit(protected)" if c == "none" else f"after {c}"
                row.append((f"{what}\nMSE {mse:.3f} {flag}", prot[0]))
            out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", default="coffee", choices=list(HOLDOUT))
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("-o", "--out", default="docs/protect.png")
    args = ap.parse_args()
    seed = list(HOLDOUT).index(args.photo)
    table = rows(crop(args.photo, args.size).float(), args.steps, seed)
    ncol = max(len(r) for r in table)
    canvas = Image.new(
        "RGB", (ncol * (CELL + PAD) + PAD, len(table) * (CELL + TOP + PAD) + PAD), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for r, cells in enumerate(table):
        y = PAD + r * (CELL + TOP + PAD)
        for c, (caption, img) in enumerate(cells):
            x = PAD + c * (CELL + PAD)
            arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            tile = Image.fromarray(arr).resize((CELL, CELL), Image.Resampling.LANCZOS)
            canvas.paste(tile, (x, y + TOP))
            draw.multiline_text((x, y + 2), caption, fill="black", spacing=2)
    canvas.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
