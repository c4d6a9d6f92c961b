"""docs/localise.png: hold-out photos, each with one edit (as bench/forensics_localise.py makes
it, same seeds), the true mask and the shipped localiser's map, side by side.

    python scripts/localise_figure.py [-o docs/localise.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from forensics_localise import edit_case, load_photos  # noqa: E402

from pixelsmith.forensics.edits import KINDS  # noqa: E402
from pixelsmith.forensics.localise import localise  # noqa: E402

CASES = (
    ("astronaut", "inpaint"),
    ("coffee", "telea"),
    ("china", "splice"),
    ("grace_hopper", "ns"),
    ("motorcycle", "biharmonic"),
    ("rocket", "none"),
)
SIDE = 200
CAPTION = 18


def _tile(t: torch.Tensor) -> Image.Image:
    arr = (t.clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr.expand(3, -1, -1) if arr.shape[0] == 1 else arr
    im = Image.fromarray(arr.permute(1, 2, 0).numpy())
    w, h = im.size
    f = SIDE / max(w, h)
    return im.resize((round(w * f), round(h * f)), Image.Resampling.BILINEAR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "localise.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    photos = load_photos()
    names = [n for n, _ in photos]
    sheet = Image.new("RGB", (3 * (SIDE + 8) + 8, len(CASES) * (SIDE + CAPTION + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (name, kind) in enumerate(CASES):
        # the bench seeds each case by the photo's index and the kind's index in KINDS
        edited, mask = edit_case(photos, names.index(name), KINDS.index(kind), kind)
        p = localise(edited)
        y = 8 + row * (SIDE + CAPTION + 8)
        texts = (f"{name}: {kind}", "true mask", "predicted map (white = edited)")
        for col, (img, text) in enumerate(zip((edited, mask, p[None]), texts, strict=True)):
            x = 8 + col * (SIDE + 8)
            draw.text((x, y), text, fill="black")
            sheet.paste(_tile(img), (x, y + CAPTION))
        inside = float(p[mask[0] > 0].mean()) if mask.sum() else float("nan")
        print(
            f"{name} {kind}: map mean {inside:.2f} in the mask, "
            f"{float(p[mask[0] == 0].mean()):.2f} outside",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
