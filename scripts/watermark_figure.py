"""docs/watermark.png: a hold-out photo, the same photo marked by pixelsmith, the change made
visible (x 30 around grey), a detail at full size of both, and what the detector reads after
JPEG 50, a crop of a quarter at an offset, and the bench's combination (crop 50%, brightness 1.5,
JPEG 80).

    python scripts/watermark_figure.py [--photo astronaut] [-o docs/watermark.png]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageEnhance

from pixelsmith.data.photos import holdout_photos
from pixelsmith.metrics.image import psnr, ssim
from pixelsmith.provenance import watermark as wm
from pixelsmith.provenance.keys import WatermarkKey

CELL, PAD, TOP = 256, 6, 34


def _t(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255


def _im(x: torch.Tensor) -> Image.Image:
    return Image.fromarray((x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def _jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _read(key: WatermarkKey, im: Image.Image) -> str:
    d = wm.detect(_t(im), key)
    found = "FOUND" if d.detected else "not found"
    message = f"'{d.message_text}'" if d.message_text else "message misread"
    return f"{found}: p = {d.p_value:.0e}, {d.matched}/64 key bits, {message}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", default="astronaut")
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/watermark.png"))
    args = ap.parse_args()
    im = Image.open(holdout_photos((args.photo,))[args.photo]).convert("RGB")
    key = WatermarkKey(np.random.default_rng(0).bytes(32), message_bits=32)
    x = _t(im)
    marked = _im(wm.embed(x, key, b"demo"))
    y = _t(marked)
    q_psnr, q_ssim = float(psnr(x[None], y[None])[0]), float(ssim(x[None], y[None])[0])
    diff = _im((y - x) * 30 + 0.5)
    w, h = im.size
    box = (w // 2 - 64, h // 4, w // 2 + 64, h // 4 + 128)
    crop = marked.crop((w // 4 + 3, h // 4 + 5, w // 4 + 3 + w // 2, h // 4 + 5 + h // 2))
    combo = _jpeg(ImageEnhance.Brightness(marked.crop((w // 8, h // 8, w * 7 // 8, h * 7 // 8)))
                  .enhance(1.5), 80)  # fmt: skip
    tiles = [
        (im, "original"),
        (marked, f"marked: {q_psnr:.1f} dB, SSIM {q_ssim:.3f}"),
        (diff, "change x 30, on grey"),
        (im.crop(box).resize((CELL, CELL), Image.NEAREST), "original, detail x2"),
        (marked.crop(box).resize((CELL, CELL), Image.NEAREST), "marked, detail x2"),
        (_jpeg(marked, 50), "JPEG 50 " + _read(key, _jpeg(marked, 50))),
        (crop, "crop 25% " + _read(key, crop)),
        (combo, "crop+bright+JPEG " + _read(key, combo)),
    ]
    cols = 4
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (CELL + PAD) + PAD, rows * (CELL + TOP + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, caption) in enumerate(tiles):
        r, c = divmod(i, cols)
        x0, y0 = PAD + c * (CELL + PAD), PAD + r * (CELL + TOP + PAD)
        t = tile.copy()
        t.thumbnail((CELL, CELL))
        sheet.paste(t, (x0, y0 + TOP))
        words = caption.split(" ")
        half = len(words) // 2 if len(caption) > 40 else len(words)
        draw.text((x0, y0), " ".join(words[:half]), fill="black")
        draw.text((x0, y0 + 14), " ".join(words[half:]), fill="black")
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
