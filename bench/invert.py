"""Inversion of held-out real images: encoder-only vs optimisation-only vs encoder + optimisation.

Protocol: the first N (64; 16 with --quick) images of the Fashion-MNIST test split, inverted by
zoo:fmnist-gan (z) and a Fashion-MNIST StyleGAN (W and W+; zoo:fmnist-stylegan, or the run
or checkpoint given by --stylegan). Each variant runs the library's `invert` with its defaults
(perceptual "auto" = the shipped fmnist classifier's features, Adam, lr 0.1 x the codes' spread,
the projector's schedule; W+ regulariser 0.01):
- encoder-only: the cached encoder's code, no steps;
- optimisation-only: --steps steps from the mean code (zeros for z, the tracked mean w for W);
- encoder + optimisation: --steps steps from the encoder's code.
Scores per image, averaged: PSNR and SSIM (pixelsmith.metrics.image, data range 1, grey
28x28) of the clamped reconstruction against the target, and the feature distance in the
classifier's features (the LPIPS-like distance the loss uses, the same network for every
variant). Seconds per image are the inversion's wall time / N at --threads intra-op threads
(the encoder's one-off training is listed apart). The variants run back to back per model, so
they share the machine's load; times on these shared machines swing 20-60%.

    .venv/bin/python bench/invert.py            # ~15 CPU minutes with cached encoders
    .venv/bin/python bench/invert.py --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelsmith.data.sources import load_images  # noqa: E402
from pixelsmith.edit.latent import latent_space  # noqa: E402
from pixelsmith.edit.latent.encoder import cache_path, encoder_for, model_sha256  # noqa: E402
from pixelsmith.edit.latent.invert import DEFAULT_ENCODER_STEPS, invert  # noqa: E402
from pixelsmith.generate import load_model  # noqa: E402

VARIANTS = ("encoder-only", "optimisation-only", "encoder+optimisation")


def targets(n: int) -> torch.Tensor:
    """The first n Fashion-MNIST test images as (n, 1, 28, 28) floats in [0, 1]."""
    s = load_images("fashion-mnist", "test", channels=1, size=28)
    return s.images[:n].float() / 255


def models(stylegan: str) -> list[tuple[str, str]]:
    """(model reference, space) pairs to bench."""
    return [("zoo:fmnist-gan", "z"), (stylegan, "w"), (stylegan, "w+")]


def variant(space, x: torch.Tensor, name: str, steps: int) -> dict:
    """One variant on all images: mean scores and seconds per image."""
    kw = {
        "encoder-only": {"steps": 0, "start": "encoder"},
        "optimisation-only": {"steps": steps, "start": "mean"},
        "encoder+optimisation": {"steps": steps, "start": "encoder"},
    }[name]
    t0 = time.monotonic()
    r = invert(space, x, **kw)
    wall = time.monotonic() - t0
    return {
        "variant": name,
        "steps": kw["steps"],
        "start": kw["start"],
        "psnr": round(float(r.psnr.mean()), 3),
        "ssim": round(float(r.ssim.mean()), 4),
        "feature_distance": round(float(r.feature_distance.mean()), 4),
        "psnr_per_image": [round(float(v), 3) for v in r.psnr],
        "loss_first_last": [round(float(r.loss[0]), 5), round(float(r.loss[-1]), 5)],
        "seconds_per_image": round(wall / len(x), 4),
        "feature_net": r.feature_net,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="16 images, 100 steps")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--stylegan",
        default="zoo:fmnist-stylegan",
        help="the StyleGAN to invert into: zoo:NAME, a run or a checkpoint (pin a checkpoint "
        "file while a run still trains: its newest checkpoint moves)",
    )
    p.add_argument("--out", default=str(ROOT / "bench/results/invert.json"))
    args = p.parse_args()
    if args.quick:
        args.n, args.steps = 16, 100
    torch.set_num_threads(args.threads)
    x = targets(args.n)
    rows, encoders = [], []
    t_all = time.monotonic()
    for ref, kind in models(args.stylegan):
        model = load_model(ref)
        space = latent_space(model, kind)
        cached = cache_path(space, DEFAULT_ENCODER_STEPS).is_file()
        _, info = encoder_for(space, DEFAULT_ENCODER_STEPS, progress=print)
        encoders.append(
            {
                "model": ref,
                "space": kind,
                "model_sha256": model_sha256(space),
                "checkpoint": str(model.checkpoint),
                "training_step": model.manifest.get("step"),
                "encoder_steps": DEFAULT_ENCODER_STEPS,
                "was_cached": cached,
                "train_seconds": round(info["seconds"], 1),
            }
        )
        for name in VARIANTS:
            row = {"model": ref, "space": kind, **variant(space, x, name, args.steps)}
            rows.append(row)
            print(
                f"{ref:<44} {kind:<3} {name:<21} PSNR {row['psnr']:6.2f}  SSIM {row['ssim']:.4f}"
                f"  feat {row['feature_distance']:.4f}  {row['seconds_per_image']:.3f} s/img",
                flush=True,
            )
    result = {
        "protocol": {
            "images": f"Fashion-MNIST test split, first {args.n} (uint8 / 255, 1x28x28)",
            "steps": args.steps,
            "threads": args.threads,
            "loss": "pixel MSE + 0.1 x classifier feature distance (+ 0.01 W+ spread / var)",
            "psnr": "data range 1, per image, mean over images",
            "ssim": "Gaussian 11x11, sigma 1.5, valid region, per image, mean",
            "feature_distance": "LPIPS-like, unit-normalised fmnist-cnn-v1 activations "
            "(3 conv blocks + 128-d embedding), squared differences, layer mean",
            "timing": "wall seconds of invert() / images, variants back to back per model",
        },
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "total_seconds": round(time.monotonic() - t_all, 1),
        },
        "encoders": encoders,
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print()
    print("| model | space | variant | PSNR dB | SSIM | feature dist. | s / image |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['space']} | {r['variant']} | {r['psnr']:.2f} | {r['ssim']:.4f} "
            f"| {r['feature_distance']:.4f} | {r['seconds_per_image']:.3f} |"
        )
    print(f"\nwrote {out} ({result['machine']['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
