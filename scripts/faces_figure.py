"""docs/faces_anonymise.png and docs/faces_restore.png: the face edits on the offline photos.

    python scripts/faces_figure.py

Anonymise: grace_hopper and the astronaut, detected by the default detector, each method at
its defaults (generate: the zoo's face StyleGAN). Restore: the astronaut with Gaussian noise
(sigma 25) and darkened, then `faces restore --ops denoise,enhance` on the face alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pixelsmith.data.degrade import LowLight
from pixelsmith.faces.anonymise import METHODS, anonymise, load_face_generator
from pixelsmith.faces.detect import detect_faces
from pixelsmith.faces.restore import restore_faces
from pixelsmith.utils.rng import BatchRandom

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _photos() -> dict[str, torch.Tensor]:
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(f).convert("RGB"))
    out = {}
    for name, arr in (("grace_hopper", hopper), ("astronaut", skimage.data.astronaut())):
        out[name] = torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)
    return out


def _crop(img: torch.Tensor, box, pad: float = 0.6) -> torch.Tensor:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    t, b = max(0, int(y0 - pad * h)), min(img.shape[1], int(y1 + pad * h))
    lft, r = max(0, int(x0 - pad * w)), min(img.shape[2], int(x1 + pad * w))
    return img[:, t:b, lft:r]


def _tile(img: torch.Tensor, label: str, size: int = 220) -> Image.Image:
    arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    im = Image.fromarray(arr).convert("RGB")
    im = im.resize((size, round(size * im.height / im.width)), Image.LANCZOS)
    canvas = Image.new("RGB", (size, im.height + 22), "white")
    canvas.paste(im, (0, 0))
    ImageDraw.Draw(canvas).text((4, im.height + 4), label, fill="black")
    return canvas


def _grid(rows: list[list[Image.Image]]) -> Image.Image:
    w = max(sum(t.width for t in r) for r in rows)
    h = sum(max(t.height for t in r) for r in rows)
    out, y = Image.new("RGB", (w, h), "white"), 0
    for r in rows:
        x = 0
        for t in r:
            out.paste(t, (x, y))
            x += t.width
        y += max(t.height for t in r)
    return out


def main() -> None:
    torch.set_num_threads(2)
    gen = load_face_generator()
    rows = []
    for name, img in _photos().items():
        faces = detect_faces(img)
        box = faces[0].box
        row = [_tile(_crop(img, box), f"{name} ({len(faces)} face)")]
        for method in METHODS:
            out = anonymise(img, faces, method, generator=gen).image
            row.append(_tile(_crop(out, box), method))
        rows.append(row)
    _grid(rows).save(DOCS / "faces_anonymise.png")
    img = _photos()["astronaut"]
    g = torch.Generator().manual_seed(0)
    dark = LowLight(gain=(0.25, 0.25), gamma=(1.5, 1.5), noise=(0.0, 0.0))(
        img[None], BatchRandom(0)
    )
    bad = (dark[0] + 25 / 255 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    faces = detect_faces(bad)
    fixed, _ = restore_faces(bad, faces, ("denoise", "enhance"))
    box = faces[0].box
    row = [
        _tile(_crop(bad, box, 1.0), "dark + noisy (sigma 25)"),
        _tile(_crop(fixed, box, 1.0), "faces restore denoise,enhance"),
        _tile(_crop(img, box, 1.0), "original"),
    ]
    _grid([row]).save(DOCS / "faces_restore.png")
    print("wrote docs/faces_anonymise.png and docs/faces_restore.png")


if __name__ == "__main__":
    main()
