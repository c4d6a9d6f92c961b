"""GAN capacity sweep: which settings lower Inception FID per image seen, measured in two stages.

Stage `train` trains each named configuration of the `dcgan` / `cgan` presets side by side (one
process each) for `--minutes` on `--device`, checkpoints every `--snap-images` images and saves
`--n` samples of every checkpoint's EMA generator (uint8, classes in turn for a conditional
model) to OUT/NAME.npz. Stage `score` scores every saved snapshot against the Fashion-MNIST test
split in Inception pool3 features and writes the table as JSON. The stages are apart so that the
training can run on a GPU machine that has no Inception weights; a GPU only buys more images seen
per minute, the curves are in images seen, and what a setting costs on a CPU is `train img/s`
(measured with `--stage throughput`, one thread).

The first sweep (bench/results/gan_sweep.json) trained on a lent H200 on the first 30,000
Fashion-MNIST training images (the whole set did not fit the transfer) and scored 2,000 samples
per snapshot in bfloat16: a screening score, biased upward against 10k-sample FID (real training
images score 8.1 at 2k) and only for ranking. Commands:

    python bench/gan_sweep.py --stage train --device cuda --minutes 5 --out OUT --limit 30000
    python bench/gan_sweep.py --stage score --out OUT --bf16
    python bench/gan_sweep.py --stage throughput
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

LR = ["model.lr_g=2e-4", "model.lr_d=2e-4"]
B64 = ["train.batch=64"]
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "default": ("dcgan", []),
    "g32-d16-b64": ("dcgan", [*B64, *LR]),
    "g32-d32-b64": ("dcgan", [*B64, "model.d_channels=32", *LR]),
    "g64-d32-b64": ("dcgan", [*B64, "model.g_channels=64", "model.d_channels=32", *LR]),
    "g64-d64-b64": ("dcgan", [*B64, "model.g_channels=64", "model.d_channels=64", *LR]),
    "g64-d64-b32": ("dcgan", ["train.batch=32", "model.g_channels=64", "model.d_channels=64", *LR]),
    "g32-d32-b64-hinge-sn": (
        "dcgan",
        [*B64, "model.d_channels=32", *LR, "model.loss=hinge", "model.spectral_norm=true"],
    ),
    "g64-d32-b64-translation": (
        "dcgan",
        [*B64, "model.g_channels=64", "model.d_channels=32", *LR, "model.diffaugment=translation"],
    ),
    "cgan-g64-d64-b64": ("cgan", [*B64, "model.g_channels=64", "model.d_channels=64", *LR]),
    "cgan-g32-d32-b64": ("cgan", [*B64, "model.d_channels=32", *LR]),
}


def batch_of(sets: list[str]) -> int:
    """The batch size a configuration trains with."""
    return int(next((s.split("=")[1] for s in sets if s.startswith("train.batch=")), 16))


def train_one(name: str, args: argparse.Namespace) -> None:
    """Train one configuration and save the samples of each of its checkpoints."""
    from pixelsmith.generate import load_model
    from pixelsmith.generate.sample import sample_batches
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import train

    preset, sets = CONFIGS[name]
    every = max(1, args.snap_images // batch_of(sets))
    limit = [f"data.limit={args.limit}"] if args.limit else []
    cfg = build_config(
        preset,
        overrides=[
            f"train.device={args.device}",
            f"train.minutes={args.minutes}",
            f"train.checkpoint_every={every}",
            "train.checkpoint_minutes=1000",
            "train.keep=1000",
            "train.eval_at_end=false",
            "train.tensorboard=false",
            "train.sample_every=100000000",
            f"train.threads={args.threads}",
            "train.seed=0",
            *limit,
            *sets,
        ],
    )
    t0 = time.perf_counter()
    run = train(cfg, Path(args.out) / "runs" / name, progress=False)
    seconds = time.perf_counter() - t0
    snaps = {}
    for ck in sorted((run / "checkpoints").glob("ckpt-*.safetensors")):
        model = load_model(ck, device=args.device)
        x = torch.cat(list(sample_batches(model, args.n, seed=0)))
        step = int(ck.stem.split("-")[1])
        snaps[f"images_{step * batch_of(sets)}"] = (x.clamp(0, 1) * 255).round().byte().numpy()
    np.savez_compressed(Path(args.out) / f"{name}.npz", **snaps)
    print(json.dumps({"name": name, "train_s": round(seconds, 1), "snapshots": list(snaps)}))


def score(args: argparse.Namespace) -> None:
    """Inception FID/KID of every saved snapshot against the test split; JSON to --json."""
    from pixelsmith.metrics import feature_net, frechet_distance, kernel_inception_distance
    from pixelsmith.metrics.distribution import FeatureStats
    from pixelsmith.metrics.evaluate import reference_stats

    torch.set_num_threads(args.threads)
    net = feature_net("inception")
    ref, ref_feats, _ = reference_stats(net, "fashion-mnist", "test", 1, (28, 28))
    rows = []
    for path in sorted(Path(args.out).glob("*.npz")):
        if path.stem not in args.names:
            continue
        for key, arr in np.load(path).items():
            x = torch.from_numpy(arr).float() / 255
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                f = torch.cat([net(x[i : i + 100])[0].float() for i in range(0, len(x), 100)])
            fid = float(frechet_distance(FeatureStats.from_features(f), ref))
            kid = kernel_inception_distance(f, ref_feats, subset_size=min(1000, len(f)))[0]
            row = {"config": path.stem, "images_seen": int(key.split("_")[1]), "n": len(x)}
            rows.append({**row, "fid": round(fid, 2), "kid": round(float(kid), 5)})
            print(json.dumps(rows[-1]), flush=True)
    out = {"configs": {k: CONFIGS[k][1] for k in args.names}, "bf16": args.bf16, "rows": rows}
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


def throughput(args: argparse.Namespace) -> None:
    """Training img/s of each configuration on one CPU thread (steps 20..220, warm-up excluded)."""
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import train

    torch.set_num_threads(1)
    for name in args.names:
        preset, sets = CONFIGS[name]
        times = []
        for steps in (20, 220):
            cfg = build_config(
                preset,
                overrides=[
                    "train.eval_at_end=false",
                    "train.threads=1",
                    "train.tensorboard=false",
                    f"train.steps={steps}",
                    "train.sample_every=100000",
                    *sets,
                ],
            )
            t0 = time.perf_counter()
            train(cfg, Path(args.out) / "throughput", progress=False)
            times.append(time.perf_counter() - t0)
        print(f"{name}: {200 * batch_of(sets) / (times[1] - times[0]):.0f} img/s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=("train", "score", "throughput"), required=True)
    ap.add_argument("--out", default="bench/runs/gan_sweep", help="samples and runs folder")
    ap.add_argument("--json", default="bench/results/gan_sweep.json")
    ap.add_argument("--only", default=",".join(CONFIGS), help="configurations, a,b,c")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--snap-images", type=int, default=300_000)
    ap.add_argument("--n", type=int, default=2000, help="samples saved per snapshot")
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action="store_true", help="score in bfloat16 (screening only)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.names = args.only.split(",")
    unknown = sorted(set(args.names) - set(CONFIGS))
    if unknown:
        ap.error(f"unknown configurations {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.one:
        train_one(args.one, args)
    elif args.stage == "train":
        me = [sys.executable, __file__, *sys.argv[1:]]
        jobs = [subprocess.Popen([*me, "--one", n]) for n in args.names]
        sys.exit(max(j.wait() for j in jobs))
    elif args.stage == "score":
        score(args)
    else:
        throughput(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
