"""Fast diffusion sampling: DPM-Solver++(2M) against DDIM, side by side on one trained model.

Each row samples `--n` images from the same model with the same seed and settings except the
sampler and its number of network calls, times it on `--threads` CPU threads, and scores FID and
KID against the Fashion-MNIST test split (10k) with the chosen features (the shipped classifier,
`fmnist`, by default; `inception` for the standard network). The anchor is DDIM with 250 steps;
every row prints its FID as a ratio to the anchor's and the time that 10k samples take at its
measured rate. Targets (issue 22): a sampler that makes 10k samples in under 5 minutes on 2 cores
with an FID within 10% of 250-step DDIM's.

Rows are sampled in the order given, so `--rows` can interleave fast and slow samplers; the
anchor is the first `ddim:250` row. `--n-time N` also times one sampling of N images for each
row whose name is in `--time-rows` (the 10k-in-5-minutes target is measured, not extrapolated).

`--figure PATH` also draws the same 10 seeds with each row's sampler (docs/diffusion_sampling.png).

Example: `python bench/diffusion_sampling.py --run RUN --n 2000 \
    --rows ddim:250,dpm-solver++:10,ddim:10,dpm-solver++:15,ddim:25,dpm-solver++:20`
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

import pixelsmith
from pixelsmith.data.sources import load_images
from pixelsmith.metrics import feature_net, frechet_distance, kernel_inception_distance

SEED = 12345
ANCHOR = "ddim:250"


def features(net: Any, images: torch.Tensor) -> torch.Tensor:
    """Features of float images in [0, 1], in the network's batches."""
    b = net.batch_size
    return torch.cat([net(images[i : i + b])[0] for i in range(0, len(images), b)])


def sample(model: Any, row: str, n: int) -> tuple[torch.Tensor, float]:
    """n images of one row (sampler:steps) and the seconds they took."""
    sampler, steps = row.split(":")
    t0 = time.perf_counter()
    images = model.sample(n, seed=SEED, sampler=sampler, steps=int(steps), eta=0.0)
    return images, time.perf_counter() - t0


def figure(model: Any, rows: dict[str, dict[str, float]], path: str, n: int = 10) -> None:
    """The same n seeds drawn with every row's sampler, one row each, FID in the label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(n * 0.9, len(rows) * 1.2))
    for ax, (row, r) in zip(axes, rows.items(), strict=True):
        images = sample(model, row, n)[0]
        strip = torch.cat(list(images[:, 0]), dim=1)
        ax.imshow(strip.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        sampler, steps = row.split(":")
        ax.set_title(f"{sampler}, {steps} steps: FID {r['fid']:.2f}", fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a diffusion run folder or checkpoint")
    ap.add_argument("--n", type=int, default=2000, help="samples scored per row")
    ap.add_argument("--rows", default=f"{ANCHOR},dpm-solver++:10,ddim:10,dpm-solver++:20")
    ap.add_argument("--features", default="fmnist", help="fmnist (shipped) or inception")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-time", type=int, default=0, help="also time N samples of --time-rows")
    ap.add_argument("--time-rows", default="dpm-solver++:10")
    ap.add_argument("--out", default="bench/results/diffusion_sampling.json")
    ap.add_argument("--figure", help="also draw the rows' samples into this PNG")
    ap.add_argument("--from-json", help="take the rows from this earlier result (figure only)")
    args = ap.parse_args()
    args.row_list = [r.strip() for r in args.rows.split(",") if r.strip()]
    for r in args.row_list + args.time_rows.split(","):
        parts = r.split(":")
        if len(parts) != 2 or not parts[1].isdigit():
            ap.error(f"a row is SAMPLER:STEPS (e.g. dpm-solver++:10), got {r!r}")
    return args


def main() -> None:
    """Sample, time and score every row; print the table and write the JSON."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    model = pixelsmith.load(args.run)
    if args.from_json:
        rows = json.loads(Path(args.from_json).read_text())["rows"]
        figure(model, {r: rows[r] for r in args.row_list}, args.figure or "samplers.png")
        return
    net = feature_net(args.features)
    test = load_images("fashion-mnist", "test", channels=1).images.float() / 255
    ref = features(net, test)
    kid_size = min(1000, args.n)
    rows: dict[str, dict[str, float]] = {}
    for row in args.row_list:
        images, seconds = sample(model, row, args.n)
        f = features(net, images)
        km, ks = kernel_inception_distance(f, ref, subsets=100, subset_size=kid_size, seed=0)
        rows[row] = {
            "fid": frechet_distance(f, ref),
            "kid_mean": km,
            "kid_std": ks,
            "seconds": seconds,
            "s_per_10k": seconds * 10_000 / args.n,
        }
        r = rows[row]
        print(f"  {row:<18} FID {r['fid']:8.3f}  {r['s_per_10k']:8.0f} s per 10k", flush=True)
    timed: dict[str, float] = {}
    for row in args.time_rows.split(",") if args.n_time else []:
        timed[row] = sample(model, row, args.n_time)[1]
    anchor = rows.get(ANCHOR)
    print(f"\n{args.n} samples per row, {args.features} features, {args.threads} threads")
    print(f"  {'sampler:steps':<18} {'FID':>8} {'/ anchor':>9} {'KID':>17} {'s per 10k':>10}")
    for row, r in rows.items():
        ratio = f"{r['fid'] / anchor['fid']:9.3f}" if anchor else f"{'-':>9}"
        kid = f"{r['kid_mean']:.4f} ± {r['kid_std']:.4f}"
        print(f"  {row:<18} {r['fid']:8.3f} {ratio} {kid:>17} {r['s_per_10k']:10.0f}")
    for row, s in timed.items():
        print(f"  measured: {args.n_time} samples of {row} in {s:.0f} s")
    man = model.manifest
    out = {
        "run": args.run,
        "model": {"preset": man["config"]["preset"], "step": man["step"]},
        "n": args.n,
        "features": {"name": net.name, "sha256": net.sha256},
        "reference": "fashion-mnist test (10,000)",
        "seed": SEED,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "anchor": ANCHOR,
        "rows": rows,
        "timed": {"n": args.n_time, "seconds": timed},
        "command": "python bench/diffusion_sampling.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "row_list"
        ),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    if args.figure:
        figure(model, rows, args.figure)


if __name__ == "__main__":
    main()
