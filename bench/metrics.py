"""Metrics speed, every part side by side with its anchor in one run.

1. SSIM on a batch of 256x256 RGB images: pixelsmith vs torchmetrics, pytorch-msssim and
   scikit-image, with each one's agreement with scikit-image (`bench/ssim_speed.py`).
2. Fréchet distance at d=2048 from 10k x 2048 features: pixelsmith vs the scipy.linalg.sqrtm path
   of pytorch-fid (`bench/frechet_speed.py`).
3. Feature extraction, images/s: the shipped Fashion-MNIST and MNIST classifiers (28x28 grey), and
   Inception-v3: pixelsmith's rebuilt module vs the plain TorchScript call, with the largest
   feature difference (`bench/inception_speed.py`).

Usage: `python bench/metrics.py [--threads 2] [--quick]`. Competitors come from the `bench` extra
(`pip install -e '.[bench]'`); a missing one is skipped with a note. Needs a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def classifier_throughput(threads: int, n: int, repeats: int) -> None:
    """Images/s of the shipped classifiers' features+logits on 28x28 grey images."""
    from pixelsmith.metrics import feature_net

    torch.set_num_threads(threads)
    x = torch.rand(n, 1, 28, 28)
    print(f"\n== feature extraction, shipped classifiers ({n} images, {threads} threads)")
    for name in ("fmnist", "mnist"):
        net = feature_net(name)
        net(x[:100])
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(0, n, net.batch_size):
                net(x[i : i + net.batch_size])
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"  {name:<8} {n / med:>9.0f} img/s  ({net.name}, {net.dim}-d)")


def run(script: str, *args: str) -> None:
    """Run one part as its own process (each holds its own threads and memory)."""
    print(f"\n== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=False)


def main() -> None:
    """Run the three parts."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller Fréchet set")
    args = ap.parse_args()
    t = str(args.threads)
    reps = "3" if args.quick else "5"
    run("ssim_speed.py", "--threads", t, "--repeats", reps)
    run("frechet_speed.py", "--threads", t, *(["--n", "4000"] if args.quick else []))
    classifier_throughput(args.threads, 10_000, int(reps))
    run("inception_speed.py", "--threads", t)


if __name__ == "__main__":
    main()
