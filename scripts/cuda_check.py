"""The CUDA paths in one short run, for a machine with a GPU (CI has none): the engine trains the
textured inpainting model and a diffusion model on the GPU, and the GPU's results agree with the
CPU's for the same weights: restoration (deterministic, so to float rounding), DPM-Solver++
sampling (the same seeded noise), and the shipped SR model.

Run from the repository root: `python scripts/cuda_check.py [OUT_DIR]`; prints one line per check
and exits non-zero on the first failure. CUDA_CHECK_DEVICE=cpu runs the script's own logic on a
machine without a GPU (every comparison is then CPU against CPU).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from pixelsmith.generate import load_model
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train

DEVICE = os.environ.get("CUDA_CHECK_DEVICE", "cuda")


def run(preset: str, out: Path, sets: list[str]) -> Path:
    """A short run of `preset` on the GPU; the run folder."""
    t0 = time.perf_counter()
    cfg = build_config(
        preset, overrides=[f"train.device={DEVICE}", "train.eval_at_end=false", *sets]
    )
    path = train(cfg, out, progress=False)
    print(f"  trained {preset} on {DEVICE} in {time.perf_counter() - t0:.1f} s: {path.name}")
    return path


def check(name: str, diff: float, bound: float) -> None:
    """Print the check and stop on a failure."""
    ok = diff <= bound
    print(f"{'ok ' if ok else 'FAIL'} {name}: max |cuda - cpu| {diff:.2e} (bound {bound:g})")
    if not ok:
        sys.exit(1)


def main() -> None:
    """Every check in turn."""
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: this script checks the GPU paths")
    where = torch.cuda.get_device_name() if DEVICE == "cuda" else "the CPU alone"
    print(f"torch {torch.__version__} on {where}")
    out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
    shapes = ["data.source=shapes", "train.steps=40", "train.tensorboard=true"]

    inpaint = run("inpaint-texture", out, [*shapes, "data.size=32", "train.batch=8"])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 40, 56, generator=g)
    mask = (torch.rand(2, 1, 40, 56, generator=g) > 0.6).float()
    on_gpu = load_model(inpaint, device=DEVICE).restore(x, mask=mask)
    on_cpu = load_model(inpaint).restore(x, mask=mask)
    check("textured inpainting restore", float((on_gpu - on_cpu).abs().max()), 1e-4)

    diff_run = run("diffusion", out, [*shapes, "data.size=16", "train.batch=16"])
    samples = {}
    for device in (DEVICE, "cpu"):
        model = load_model(diff_run, device=device)
        samples[device] = model.sample(8, seed=3, sampler="dpm-solver++", steps=10).cpu()
    check(
        "diffusion dpm-solver++ samples",
        float((samples[DEVICE] - samples["cpu"]).abs().max()),
        1e-3,
    )

    lr = torch.rand(1, 3, 48, 64, generator=g)
    sr = {d: load_model("zoo:sr-x2", device=d).restore(lr) for d in (DEVICE, "cpu")}
    # cuDNN convolves in TF32 on Ampere and later (10-bit mantissa): half an 8-bit grey level.
    check("zoo:sr-x2 restore", float((sr[DEVICE] - sr["cpu"]).abs().max()), 1 / 510)
    print("all CUDA checks passed")


if __name__ == "__main__":
    main()
