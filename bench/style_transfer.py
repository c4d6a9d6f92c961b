"""Time and loss curves of `pixelsmith edit style` at 256x256 and 512x512 on 2 threads.

Content: scikit-image's astronaut (512x512, resized to each size); style: the painting-like
`Autumn` wallpaper of Debian's plasma-workspace-wallpapers (or `--style FILE`). The default
settings of pixelsmith.edit.style (steps, weights, layers) at `size` = 256 and 512; the relative
style and content losses every 10 steps, seconds per step and in total.

    .venv/bin/python bench/style_transfer.py              # ~15 minutes on 2 cores
    .venv/bin/python bench/style_transfer.py --sizes 256 --steps 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelsmith.edit import style as st  # noqa: E402

AUTUMN = "/usr/share/wallpapers/Autumn/contents/images/1280x1024.jpg"


def _load(path: str) -> torch.Tensor:
    arr = np.array(Image.open(path).convert("RGB"))
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--steps", type=int, default=st.STEPS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--style", default=AUTUMN)
    ap.add_argument("--out", default="bench/results/style_transfer.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from skimage.data import astronaut

    content_full = torch.from_numpy(astronaut()).permute(2, 0, 1).float() / 255
    style = _load(args.style)
    t = time.perf_counter()
    net = st.load_network()
    load_s = time.perf_counter() - t
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        content = torch.nn.functional.interpolate(
            content_full[None], (size, size), mode="bicubic", antialias=True
        )[0].clamp(0, 1)
        log = st.StyleLog()
        t = time.perf_counter()
        st.style_transfer(content, style, steps=args.steps, size=size, log=log, net=net)
        total = time.perf_counter() - t
        every = list(range(9, len(log.steps), 10))
        rows.append(
            {
                "size": f"{size}x{size}",
                "steps": args.steps,
                "seconds_total": round(total, 1),
                "seconds_per_step": round(log.seconds / len(log.steps), 3),
                "style_loss_first": round(log.style[0], 5),
                "style_loss_last": round(log.style[-1], 5),
                "content_loss_last": round(log.content[-1], 5),
                "curve_steps": [log.steps[i] for i in every],
                "curve_style": [round(log.style[i], 5) for i in every],
                "curve_content": [round(log.content[i], 5) for i in every],
            }
        )
        r = rows[-1]
        print(
            f"{r['size']:>9}: {r['steps']} steps in {r['seconds_total']:.0f} s "
            f"({r['seconds_per_step']:.2f} s/step); style {r['style_loss_first']:.4f} -> "
            f"{r['style_loss_last']:.4f}, content {r['content_loss_last']:.4f}",
            flush=True,
        )
    report = {
        "protocol": (
            "content skimage astronaut resized (bicubic, antialiased) to each size; style "
            f"{args.style}; pixelsmith.edit.style defaults: steps {args.steps}, lr {st.LR}, "
            f"style weight {st.STYLE_WEIGHT}, content weight {st.CONTENT_WEIGHT}, tv weight "
            f"{st.TV_WEIGHT}, jitter {st.JITTER}, style layers {list(st.STYLE_LAYERS)}, content "
            f"layer {st.CONTENT_LAYER}; losses relative (|G(x)-G(s)|^2/|G(s)|^2 averaged over "
            "the style layers, |F(x)-F(c)|^2/|F(c)|^2), measured on the jittered image of "
            "each step"
        ),
        "threads": args.threads,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),  # other jobs share the cores
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "network_load_seconds": round(load_s, 2),
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
