"""Training speed in bfloat16 against float32: each preset's engine step with
`train.precision=fp32` and with `train.precision=bf16`, interleaved in one process, img/s and
the ratio. bf16 pays only where the hardware has bf16 matrix units (AMX on recent Xeons); the
CPU's flags are printed with the table.

    python bench/train_precision.py [--presets dcgan,sc-gan,...] [--rounds 5] [--steps 20]
        [--threads 1] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from pixelsmith.deploy.choice import cpu_signature
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import Trainer

# The wide-discriminator recipe of docs/gan_quality.md, self-conditioned.
SC_GAN_WIDE = ["model.d_channels=32", "train.batch=64", "model.lr_g=2e-4", "model.lr_d=2e-4"]
PRESETS = {
    "dcgan": [],
    "sc-gan": [],
    "sc-gan-wide": SC_GAN_WIDE,
    "stylegan-30min": [],
    "diffusion-30min": [],
}


def rates(preset: str, sets: list[str], args: argparse.Namespace) -> dict[str, float]:
    """Median img/s of the preset's step in each precision, rounds interleaved."""
    name = "sc-gan" if preset == "sc-gan-wide" else preset
    base = [f"data.source={args.data}", "train.steps=1000000", f"train.threads={args.threads}"]
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            p: Trainer(
                build_config(name, overrides=[*base, *sets, *args.set, f"train.precision={p}"]),
                os.path.join(tmp, p),
                progress=False,
            )
            for p in times
        }
        batch = trainers["fp32"].cfg.train.batch
        for t in trainers.values():  # warm-up: oneDNN picks and caches its kernels
            for _ in range(3):
                t.step()
        for _ in range(args.rounds):
            for p, t in trainers.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    t.step()
                times[p].append(time.perf_counter() - start)
    return {p: args.steps * batch / statistics.median(v) for p, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_signature()}, {os.cpu_count()} cores; {args.threads} thread(s)")
    print(
        f"torch {torch.__version__}; median of {args.rounds} interleaved rounds, {args.steps} steps"
    )
    print(f"{'preset':18s} {'fp32 img/s':>11s} {'bf16 img/s':>11s} {'bf16/fp32':>10s}")
    for preset in args.presets.split(","):
        r = rates(preset, PRESETS.get(preset, []), args)
        print(f"{preset:18s} {r['fp32']:11.1f} {r['bf16']:11.1f} {r['bf16'] / r['fp32']:9.2f}x")


if __name__ == "__main__":
    main()
