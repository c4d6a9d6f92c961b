"""SSIM speed and accuracy: pixelsmith against torchmetrics, pytorch-msssim and scikit-image.

Builds one batch of smooth RGB float32 images in [0, 1] (default 16 x 3 x 256 x 256, bilinear
upsampled noise) and a noisy copy, then times per-image SSIM (Gaussian window 11, sigma 1.5) with:

- pixelsmith `ssim` (float64 separable filter over the valid region);
- torchmetrics `structural_similarity_index_measure` (reflect padding, 11x11 2-D kernel, averages
  over the whole padded image, so its values differ from the valid-region definition);
- pytorch_msssim `ssim` (float32 separable grouped convolution, valid region);
- scikit-image `structural_similarity`, one image at a time on float64 copies; its values are the
  reference for the error column.

Repeats are interleaved (the order rotates each round) and the table reports median times, the
speed relative to torchmetrics and the largest per-image difference from scikit-image. Missing
competitors are skipped. Usage: `.venv/bin/python bench/ssim_speed.py [--n 16] [--threads 1]`.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelsmith.metrics.image import ssim  # noqa: E402


def _images(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random RGB images and a copy with Gaussian noise, both float32 in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 8, size // 8, generator=g)
    x = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    y = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x.contiguous(), y


def _competitors(x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable[[], np.ndarray]]:
    """Name -> zero-argument call returning per-image SSIM as float64 numpy, for those installed."""
    out: dict[str, Callable[[], np.ndarray]] = {
        "pixelsmith": lambda: ssim(x, y, data_range=1.0).double().numpy(),
    }
    try:
        tm = importlib.import_module("torchmetrics.functional.image")
        out["torchmetrics"] = lambda: (
            tm.structural_similarity_index_measure(
                x, y, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0,
                reduction="none",
            )
            .double()
            .numpy()
        )  # fmt: skip
    except ImportError:
        print("torchmetrics not installed: skipped")
    try:
        pm = importlib.import_module("pytorch_msssim")
        out["pytorch_msssim"] = lambda: (
            pm.ssim(x, y, data_range=1.0, size_average=False).double().numpy()
        )
    except ImportError:
        print("pytorch_msssim not installed: skipped")
    try:
        skm = importlib.import_module("skimage.metrics")
        xs, ys = x.double().numpy(), y.double().numpy()

        def run_skimage() -> np.ndarray:
            return np.array(
                [
                    skm.structural_similarity(
                        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                        data_range=1.0, channel_axis=0,
                    )
                    for a, b in zip(xs, ys, strict=True)
                ]
            )  # fmt: skip

        out["skimage"] = run_skimage
    except ImportError:
        print("scikit-image not installed: skipped (no error column)")
    return out


def main() -> None:
    """Run the comparison and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="images per batch")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    x, y = _images(args.n, args.size, args.seed)
    calls = _competitors(x, y)
    values = {name: call() for name, call in calls.items()}  # warm-up, and the values compared
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t0)

    med = {name: statistics.median(ts) for name, ts in times.items()}
    ref = values.get("skimage")
    base = med.get("torchmetrics")
    print(
        f"SSIM on {args.n} x 3 x {args.size} x {args.size} float32, torch {torch.__version__}, "
        f"{args.threads} thread(s), median of {args.repeats} interleaved runs"
    )
    print(f"{'method':<16}{'median s':>10}{'vs torchmetrics':>17}{'max |err| vs skimage':>22}")
    for name in names:
        speed = f"{base / med[name]:.2f}x" if base else "n/a"
        err = f"{np.abs(values[name] - ref).max():.2e}" if ref is not None else "n/a"
        print(f"{name:<16}{med[name]:>10.3f}{speed:>17}{err:>22}")


if __name__ == "__main__":
    main()
