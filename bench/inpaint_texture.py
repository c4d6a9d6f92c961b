"""Inpainting texture: what people see in the holes, measured next to PSNR.

PSNR rewards the mean, so a smooth blur in a hole scores well; a perceptual distance between sets
of images does not. From each of the 12 hold-out photos (`photos.holdout_photos()`, never trained
on; grey ones repeated to RGB) this cuts `--windows` random 128x128 windows at the photo's own
resolution, punches one free-form hole into each (`degrade.masks_with_coverage`, 10-40% of the
window, the issue's range), fills it with every method and scores:

- PSNR over the window and over the hole pixels (mean over windows);
- KID (Binkowski et al.; unbiased, so usable at a few hundred images) and FID between the filled
  windows and the same windows untouched, in Inception-v3 pool3 features (the `inception` extra;
  windows resized to 299 by the standard protocol). FID at this n is biased upward: compare rows,
  not absolute values.

Rows: the harmonic fill (`--method harmonic`), OpenCV Telea (radius 3, the `edit` extra), and the
learned refinement (`zoo:inpaint`, or `--model RUN`). Target (issue 22): a model whose filled-region
KID is below the harmonic fill's and the current model's, with window PSNR at most 0.3 dB below
the current model's.

Example: `python bench/inpaint_texture.py --windows 16 --json bench/results/inpaint_texture.json`
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from pixelsmith.data import degrade
from pixelsmith.data.photos import holdout_photos
from pixelsmith.edit import ops
from pixelsmith.imageio import read_natural
from pixelsmith.metrics import feature_net, frechet_distance, kernel_inception_distance
from pixelsmith.metrics.image import psnr
from pixelsmith.utils.rng import BatchRandom

SIZE = 128
COVERAGE = (0.1, 0.4)


def windows(per_photo: int, seed: int) -> torch.Tensor:
    """(N, 3, SIZE, SIZE) windows in [0, 1], per_photo from each hold-out photo, seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for path in holdout_photos().values():
        arr, _ = read_natural(path)
        arr = arr[..., :3] if arr.shape[2] >= 3 else np.repeat(arr[..., :1], 3, axis=2)
        h, w = arr.shape[:2]
        for _ in range(per_photo):
            y, x = int(rng.integers(0, h - SIZE + 1)), int(rng.integers(0, w - SIZE + 1))
            win = np.ascontiguousarray(arr[y : y + SIZE, x : x + SIZE])
            out.append(torch.from_numpy(win).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def fill(method: str, x: torch.Tensor, masks: torch.Tensor, model: str | None) -> torch.Tensor:
    """Every window filled by one method (holes zeroed before the method sees them)."""
    holed = x * (1 - masks)
    if method == "learned":
        return torch.cat(
            [ops.inpaint(holed[i], masks[i], model=model)[None] for i in range(len(x))]
        ).clamp(0, 1)
    return ops.inpaint(holed, masks, method=method).clamp(0, 1)


def main() -> None:
    """Fill, score and print the table; write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=16, help="windows per hold-out photo")
    ap.add_argument("--methods", default="harmonic,telea,learned")
    ap.add_argument("--model", help="an inpainting run or zoo:NAME for the learned row")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="bench/results/inpaint_texture.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = windows(args.windows, args.seed)
    masks = degrade.masks_with_coverage(len(x), SIZE, SIZE, BatchRandom(args.seed), COVERAGE)
    net = feature_net("inception")

    def feats(images: torch.Tensor) -> torch.Tensor:
        b = net.batch_size
        return torch.cat([net(images[i : i + b])[0] for i in range(0, len(images), b)])

    real = feats(x)
    subset = min(100, len(x))
    rows = {}
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        try:
            out = fill(method, x, masks, args.model)
        except Exception as e:  # a missing extra: say so in the row
            rows[method] = {"note": f"{type(e).__name__}: {e}"}
            print(f"  {method}: {rows[method]['note']}")
            continue
        seconds = time.perf_counter() - t0
        hole = masks.expand_as(x) > 0.5
        hole_psnr = [
            float(psnr(out[i][hole[i]].view(1, 1, 1, -1), x[i][hole[i]].view(1, 1, 1, -1)))
            for i in range(len(x))
        ]
        f = feats(out)
        km, ks = kernel_inception_distance(f, real, subsets=100, subset_size=subset, seed=0)
        rows[method] = {
            "psnr": float(psnr(out, x).mean()),
            "hole_psnr": float(np.mean(hole_psnr)),
            "kid_mean": km,
            "kid_std": ks,
            "fid": frechet_distance(f, real),
            "s_per_window": seconds / len(x),
        }
        r = rows[method]
        print(
            f"  {method}: PSNR {r['psnr']:.2f}, hole {r['hole_psnr']:.2f}, KID {km:.5f}", flush=True
        )
    cover = float(masks.mean())
    print(f"\n{len(x)} windows of {SIZE}x{SIZE}, holes {cover:.1%} on average, Inception features")
    print(f"  {'method':<10} {'PSNR':>7} {'hole':>7} {'KID x1000':>16} {'FID':>8} {'s/window':>9}")
    for m, r in rows.items():
        if "note" in r:
            print(f"  {m:<10} {r['note']}")
            continue
        kid = f"{1000 * r['kid_mean']:.2f} ± {1000 * r['kid_std']:.2f}"
        print(
            f"  {m:<10} {r['psnr']:7.2f} {r['hole_psnr']:7.2f} {kid:>16} {r['fid']:8.2f} "
            f"{r['s_per_window']:9.3f}"
        )
    out = {
        "command": "python bench/inpaint_texture.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None),
        "windows": len(x),
        "size": SIZE,
        "coverage_range": COVERAGE,
        "mean_coverage": cover,
        "features": {"name": net.name, "sha256": net.sha256},
        "cpu": platform.processor() or platform.machine(),
        "rows": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
