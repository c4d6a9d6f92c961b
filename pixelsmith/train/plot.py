"""Loss curves drawn with Pillow: no plotting library needed in the core install."""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image, ImageDraw

from pixelsmith.utils.encryption import EncryptionKey, write_file

COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
]


def plot_curves(
    series: dict[str, list[tuple[float, float]]],
    path: str | Path,
    title: str = "",
    size: tuple[int, int] = (800, 450),
    key: EncryptionKey | None = None,
) -> Path:
    """Draw named (x, y) series on shared axes with a legend and save a PNG atomically
    (encrypted with `key` when given)."""
    w, h = size
    left, right, top, bottom = 70, 20, 30, 40
    im = Image.new("RGB", size, "white")
    dr = ImageDraw.Draw(im)
    pts = [(x, y) for s in series.values() for x, y in s if math.isfinite(y)]
    if pts:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
        pad = 0.05 * (y1 - y0)
        y0, y1 = y0 - pad, y1 + pad

        def px(x: float, y: float) -> tuple[float, float]:
            return (
                left + (x - x0) / (x1 - x0) * (w - left - right),
                h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom),
            )

        for i in range(5):
            yv = y0 + (y1 - y0) * i / 4
            _, yy = px(x0, yv)
            dr.line([(left, yy), (w - right, yy)], fill=(230, 230, 230))
            dr.text((5, yy - 6), f"{yv:.3g}", fill="black")
            xv = x0 + (x1 - x0) * i / 4
            xx, _ = px(xv, y0)
            dr.text((xx - 10, h - bottom + 5), f"{xv:.0f}", fill="black")
        for i, (name, s) in enumerate(series.items()):
            colour = COLOURS[i % len(COLOURS)]
            line = [px(x, y) for x, y in s if math.isfinite(y)]
            if len(line) > 1:
                dr.line(line, fill=colour, width=2)
            dr.rectangle(
                [w - right - 110, top + 5 + 16 * i, w - right - 98, top + 15 + 16 * i], fill=colour
            )
            dr.text((w - right - 92, top + 3 + 16 * i), name, fill="black")
    dr.rectangle([left, top, w - right, h - bottom], outline="black")
    dr.text((left, 8), title, fill="black")
    dr.text((w // 2 - 10, h - 18), "step", fill="black")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return write_file(path, buf.getvalue(), key)
