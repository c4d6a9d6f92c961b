"""EMA half-life: one run's generator averaged over several half-lives, scored side by side.

The moving average of the generator's weights does not feed back into training, so one run can
keep extra averages at other half-lives (same rule as the engine's: `train.ema_kimg` capped at
`rampup` x images seen) and every average is scored on the very same raw weights. Stage `train`
runs a preset through the engine with those extra copies, saved beside each checkpoint (all
checkpoints are kept); stage `score` loads each checkpoint, puts every copy (and the raw G) in
place of its EMA generator and scores it:

- class agreement (conditional models): 1,000 samples, classes cycled 0..9, z from seed 0,
  called by the source's shipped classifier (`class_agreement/samples`, the sandal class and the
  worst class);
- FID and KID with the shipped Fashion-MNIST features, 10k samples against the test split, at the
  checkpoints named by `--fid-steps` (one at a time: ~1 minute each on one thread).

    python bench/ema_halflife.py --stage train --preset cgan --seed 2 --steps 16000 \
        --halflives 0.5,1,2,3,5,10 --out bench/runs/ema_cgan
    python bench/ema_halflife.py --stage score --out bench/runs/ema_cgan --fid-steps 16000 \
        --json bench/results/ema_halflife_cgan.json

A half-life written `KIMG:RAMPUP` uses that rampup instead of the run's (e.g. `40:0.2`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pixelsmith.train.loop as loop  # noqa: E402
from pixelsmith.generate.load import load_model  # noqa: E402
from pixelsmith.metrics.evaluate import evaluate_model  # noqa: E402
from pixelsmith.metrics.family import classes_called  # noqa: E402
from pixelsmith.metrics.features import FOR_SOURCE, feature_net, quantize  # noqa: E402
from pixelsmith.train.config import build_config  # noqa: E402
from pixelsmith.train.ema import ema_beta  # noqa: E402

SANDAL = 5


def train_stage(args: argparse.Namespace) -> None:
    """Train the preset, keeping an extra EMA of G per half-life; saved at each checkpoint."""
    cfg = build_config(
        args.preset,
        overrides=[
            f"train.seed={args.seed}",
            f"train.steps={args.steps}",
            f"train.threads={args.threads}",
            "train.keep=1000",
            "train.eval_at_end=false",
            *args.set,
        ],
    )
    tc = cfg.train
    out_dir = Path(args.out) / "ema_halflife"
    out_dir.mkdir(parents=True, exist_ok=True)
    halves = args.halflives.split(",")
    state: dict = {"step": 0, "copies": None}
    engine_update = loop.update_ema

    def update(ema: torch.nn.Module, src: torch.nn.Module, beta: float) -> None:
        engine_update(ema, src, beta)
        raw = [p.detach() for p in src.parameters()]
        if state["copies"] is None:
            state["copies"] = {h: [p.clone() for p in raw] for h in halves}
        state["step"] += 1
        nimg = state["step"] * tc.batch
        for h, ps in state["copies"].items():
            kimg, _, rampup = h.partition(":")
            b = ema_beta(tc.batch, nimg, float(kimg), float(rampup) if rampup else tc.ema_rampup)
            torch._foreach_lerp_(ps, raw, 1.0 - b)
        if state["step"] % tc.checkpoint_every == 0 or state["step"] == args.steps:
            torch.save(state["copies"], out_dir / f"step-{state['step']:06d}.pt")

    loop.update_ema = update
    loop.train(cfg, Path(args.out), progress=False)


def _agreement(model, net) -> dict[str, float]:
    y = torch.arange(1000) % 10
    z = torch.randn(1000, model.cfg.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = ((model.networks["G_ema"].eval()(z, y) + 1) / 2).clamp(0, 1)
    called = classes_called(net, [quantize(x)])
    per = [float((called[y == k] == k).float().mean()) for k in range(10)]
    return {
        "agreement": round(float((called == y).float().mean()), 3),
        "sandal": round(per[SANDAL], 3),
        "worst_class": round(min(per), 3),
    }


def score_stage(args: argparse.Namespace) -> None:
    """Score the raw G and every average at every checkpoint; JSON to --json."""
    torch.set_num_threads(args.threads)
    root = Path(args.out)
    run = next(p for p in sorted(root.iterdir()) if (p / "checkpoints").is_dir())
    fid_steps = {int(s) for s in args.fid_steps.split(",") if s}
    net = feature_net(FOR_SOURCE["fashion-mnist"])
    rows = []
    for copies_file in sorted((root / "ema_halflife").glob("step-*.pt")):
        step = int(copies_file.stem.split("-")[1])
        # One load per checkpoint: each half-life overwrites every parameter of G_ema, and
        # the buffers (BatchNorm statistics) are G's in every case.
        model = load_model(run / "checkpoints" / f"ckpt-{step:06d}.safetensors")
        G = model.networks["G_ema"]
        copies = torch.load(copies_file)
        copies = {"raw": [p.detach().clone() for p in model.networks["G"].parameters()], **copies}
        for h, params in copies.items():
            with torch.no_grad():
                for p, q in zip(G.parameters(), params, strict=True):
                    p.copy_(q)
            row: dict = {"step": step, "halflife_kimg": h}
            if model.classes:
                row.update(_agreement(model, net))
            if step in fid_steps:
                for s in evaluate_model(model, "fid,kid", n=10000):
                    row[s.card.metric] = round(s.value, 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    manifest = (
        json.loads((run / "manifest.json").read_text()) if (run / "manifest.json").exists() else {}
    )
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "run": str(run),
        "preset": manifest.get("preset"),
        "rows": rows,
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=("train", "score"), required=True)
    ap.add_argument("--preset", default="cgan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=16000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--halflives", default="0.5,1,2,3,5,10", help="kimg[:rampup],...")
    ap.add_argument("--set", action="append", default=[], help="more KEY=VALUE settings")
    ap.add_argument("--out", default="bench/runs/ema_halflife")
    ap.add_argument("--fid-steps", default="", help="checkpoints to score FID/KID at, a,b")
    ap.add_argument("--json", default="bench/results/ema_halflife.json")
    args = ap.parse_args()
    train_stage(args) if args.stage == "train" else score_stage(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
