"""docs/forensics_families.png: real Fashion-MNIST test images and twelve test samples of each
generator family of bench/forensics_generated.py, each framed by what the zoo's fmnist-detector
calls it (red: generated, green: real), beside the family's AP when the detector saw it and
when it did not (bench/results/forensics_generated.json).

    python scripts/forensics_figure.py --family vae=RUN --family pixelcnn=RUN \\
        --family diffusion=RUN --family distilled=RUN    # the runs the bench used
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import forensics_generated as bench  # noqa: E402

from pixelsmith.data.sources import load_images  # noqa: E402
from pixelsmith.forensics import generated as gen  # noqa: E402

N, SCALE, FRAME, LABEL = 12, 3, 3, 210


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--family", action="append", default=[], metavar="NAME=RUN")
    p.add_argument("-o", "--out", default="docs/forensics_families.png")
    args = p.parse_args()
    refs = dict(bench.ZOO_FAMILIES)
    refs.update(item.split("=", 1) for item in args.family)
    results = json.loads(bench.RESULTS.read_text())
    det = gen.load_detector()
    rows = [("real (test split)", load_images("fashion-mnist", split="test").as_float()[:N])]
    for name in [n for n in bench.ORDER if n in refs]:
        x = bench.samples(name, refs[name], 500, bench.TEST_SEED)[:N]
        seen = results["seen"][name]["clean"]["ap"]
        unseen = results["leave_one_out"][name]["cnn"]["clean"]["ap"]
        rows.append((f"{name}: AP seen {seen:.2f}, unseen {unseen:.2f}", x))
    cell = 28 * SCALE + 2 * FRAME + 4
    canvas = Image.new("RGB", (LABEL + N * cell, len(rows) * cell), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, x) in enumerate(rows):
        draw.text((6, r * cell + cell // 2 - 6), label, fill="black")
        called = gen.scores(det.net, x) >= 0.5
        for i in range(len(x)):
            im = Image.fromarray((x[i, 0].numpy() * 255).round().astype(np.uint8))
            im = im.resize((28 * SCALE, 28 * SCALE), Image.NEAREST).convert("RGB")
            x0, y0 = LABEL + i * cell + 2, r * cell + 2
            colour = (220, 40, 40) if bool(called[i]) else (40, 170, 60)
            side = 28 * SCALE + 2 * FRAME - 1
            draw.rectangle([x0, y0, x0 + side, y0 + side], fill=colour)
            canvas.paste(im, (x0 + FRAME, y0 + FRAME))
    canvas.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
