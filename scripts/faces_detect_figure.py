"""docs/faces_detect.png: the three detectors on astronaut, grace_hopper and camera.

Each photo is shown three times, one detector each (MTCNN with its five landmarks, Haar with
the eyes it found and the nose and mouth estimated from them, LBP boxes only), at the detectors'
defaults (min size 20; MTCNN thresholds 0.6/0.7/0.7).

    python scripts/faces_detect_figure.py [-o docs/faces_detect.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pixelsmith.faces import available_detectors, detect_faces, draw_faces
from pixelsmith.faces.detect import _font

HEIGHT = 300


def photos() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = np.asarray(Image.open(f).convert("RGB"))
    return {"astronaut": data.astronaut(), "grace_hopper": grace, "camera": data.camera()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="docs/faces_detect.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    detectors = available_detectors()
    rows = []
    for name, img in photos().items():
        tiles = []
        for det in detectors:
            faces = detect_faces(img, det)
            drawn = draw_faces(img, faces, width=3)
            arr = (drawn * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            tile = Image.fromarray(arr)
            tile = tile.resize((round(tile.width * HEIGHT / tile.height), HEIGHT), Image.LANCZOS)
            caption = f"{name}: {det}, {len(faces)} face(s)"
            ImageDraw.Draw(tile).text(
                (6, HEIGHT - 22),
                caption,
                fill="white",
                font=_font(16),
                stroke_width=2,
                stroke_fill="black",
            )
            tiles.append(tile)
        rows.append(tiles)
    width = max(sum(t.width for t in r) + 4 * (len(r) - 1) for r in rows)
    sheet = Image.new("RGB", (width, len(rows) * HEIGHT + 4 * (len(rows) - 1)), "white")
    for i, r in enumerate(rows):
        x = 0
        for t in r:
            sheet.paste(t, (x, i * (HEIGHT + 4)))
            x += t.width + 4
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
