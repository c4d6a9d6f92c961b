"""docs/style.png: neural style transfer before and after, for two content/style pairs.

Each row: the content, the style, and `pixelsmith.edit.style.style_transfer` with its default
settings (layers, weights, steps) at a working long side of `--size` (384 by default, to keep
the figure to a few minutes on 2 cores). Offline images only: scikit-image's chelsea with
Debian's ColorfulCups wallpaper (plasma-workspace-wallpapers), and matplotlib's grace_hopper
(a face) with the Picture_1A paint-brush photo (mate-backgrounds).

    python scripts/style_figure.py [-o docs/style.png] [--size 384]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pixelsmith.edit import style as st

CUPS = "/usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg"
BRUSHES = "/usr/share/backgrounds/Picture_1A_by_freespace.jpg"
CELL = 256  # shown height


def _tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr[..., :3])).permute(2, 0, 1).float() / 255


def pairs() -> list[tuple[str, torch.Tensor, str, torch.Tensor]]:
    """(content name, content, style name, style) per row."""
    import matplotlib.cbook
    from skimage.data import chelsea

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = np.asarray(Image.open(f).convert("RGB"))
    return [
        ("chelsea (scikit-image)", _tensor(chelsea()), "ColorfulCups (Debian)", _load(CUPS)),
        ("grace_hopper (matplotlib)", _tensor(grace), "Picture_1A (Debian)", _load(BRUSHES)),
    ]


def _load(path: str) -> torch.Tensor:
    return _tensor(np.asarray(Image.open(path).convert("RGB")))


def _shown(t: torch.Tensor) -> Image.Image:
    arr = (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    im = Image.fromarray(arr)
    return im.resize((round(im.width * CELL / im.height), CELL), Image.Resampling.LANCZOS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="docs/style.png")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--steps", type=int, default=st.STEPS)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for cname, content, sname, style in pairs():
        log = st.StyleLog()
        out = st.style_transfer(content, style, steps=args.steps, size=args.size, log=log)
        print(
            f"{cname} x {sname}: {log.seconds:.0f} s, style {log.style[0]:.3f} -> "
            f"{log.style[-1]:.3f}, content {log.content[-1]:.3f}",
            flush=True,
        )
        rows.append([(cname, _shown(content)), (sname, _shown(style)), ("pixelsmith", _shown(out))])
    pad, top = 6, 18
    width = max(sum(im.width + pad for _, im in row) for row in rows) + pad
    canvas = Image.new("RGB", (width, len(rows) * (CELL + top + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        y, x = pad + r * (CELL + top + pad), pad
        for caption, im in row:
            canvas.paste(im, (x, y + top))
            draw.text((x, y + 3), caption, fill="black")
            x += im.width + pad
    caption = f"edit style, defaults, working long side {args.size}, {args.steps} steps"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(f"wrote {args.out} ({caption})")


if __name__ == "__main__":
    main()
