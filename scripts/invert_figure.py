"""docs/invert.png: held-out Fashion-MNIST test images inverted into each generator: rows are the
target, encoder-only, optimisation-only (from the mean code) and encoder + optimisation, with
each image's PSNR; one block per model and space (as bench/invert.py runs them, 200 steps).

    python scripts/invert_figure.py [-o docs/invert.png] [--n 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from invert import STYLEGAN_RUN, models, targets  # noqa: E402

from pixelsmith.edit.latent import latent_space  # noqa: E402
from pixelsmith.edit.latent.invert import invert  # noqa: E402
from pixelsmith.generate import load_model  # noqa: E402

ROWS = (
    ("target", None),
    ("encoder only", {"steps": 0, "start": "encoder"}),
    ("optimisation only", {"steps": 200, "start": "mean"}),
    ("encoder + optimisation", {"steps": 200, "start": "encoder"}),
)
SCALE = 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default=str(ROOT / "docs/invert.png"))
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--stylegan", default=STYLEGAN_RUN)
    args = ap.parse_args()
    torch.set_num_threads(1)
    x = targets(64)[torch.arange(args.n) * 8]  # every 8th of the bench's images
    blocks = []
    for ref, kind in models(args.stylegan):
        model = load_model(ref)
        space = latent_space(model, kind)
        cells = [("target", x, None)]
        for caption, kw in ROWS[1:]:
            r = invert(space, x, **kw)
            cells.append((caption, r.images, r.psnr))
            print(f"{ref} {kind} {caption}: PSNR {float(r.psnr.mean()):.2f}", flush=True)
        step = model.manifest.get("step")
        name = ref if ref.startswith("zoo:") else f"Fashion-MNIST StyleGAN, step {step}"
        blocks.append((f"{name}, {kind}", cells))
    cell, pad, label, head, caption_h = 28 * SCALE, 4, 150, 20, 12
    width = label + args.n * (cell + pad) + pad
    block_h = head + len(ROWS) * (cell + caption_h + pad)
    canvas = Image.new("L", (width, len(blocks) * block_h + pad), 255)
    draw = ImageDraw.Draw(canvas)
    for b, (title, cells) in enumerate(blocks):
        y0 = pad + b * block_h
        draw.text((pad, y0 + 4), title, fill=0)
        for r, (caption, imgs, psnr) in enumerate(cells):
            y = y0 + head + r * (cell + caption_h + pad)
            draw.text((pad, y + cell // 2 - 6), caption, fill=0)
            for i in range(args.n):
                xx = label + i * (cell + pad)
                arr = (imgs[i, 0].clamp(0, 1) * 255).round().byte().numpy()
                tile = Image.fromarray(arr, "L").resize((cell, cell), Image.Resampling.NEAREST)
                canvas.paste(tile, (xx, y))
                if psnr is not None:
                    draw.text((xx + 2, y + cell), f"{float(psnr[i]):.1f} dB", fill=0)
    canvas.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
