"""BatchNorm statistics of a GAN's EMA generator: copied from the raw G, or re-estimated.

The engine's moving average of G averages parameters and copies the buffers, so the EMA
generator samples with the raw G's BatchNorm running statistics. This re-estimates them on the
EMA generator's own activations (cumulative average over `--batches` batches of `--batch` codes
drawn from a fixed seed, in train mode) and scores the checkpoint both ways, FID and KID of 10k
samples against the test split in the chosen features:

    python bench/gan_bn_restats.py CKPT --features inception --threads 1 \
        --json bench/results/gan_bn_restats_sc_gan_2h.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelsmith.generate.load import load_model  # noqa: E402
from pixelsmith.metrics.evaluate import evaluate_model  # noqa: E402


@torch.no_grad()
def restats(G: nn.Module, z_dim: int, batches: int, batch: int, seed: int) -> None:
    """Replace G's BatchNorm running statistics by their average over G's own batches."""
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise SystemExit("this generator has no BatchNorm")
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    g = torch.Generator().manual_seed(seed)
    G.train()
    for _ in range(batches):
        G(torch.randn(batch, z_dim, generator=g))
    G.eval()


def score(model, features: str) -> dict[str, float]:
    """FID and KID of 10k samples of seed 0."""
    t = time.time()
    scores = evaluate_model(model, "fid,kid", n=10000, features=features)
    out = {s.card.metric: round(s.value, 4) for s in scores}
    return {**out, "seconds": round(time.time() - t)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--features", default="auto", help="auto (the source's shipped) or inception")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=123, help="seed of the codes behind the statistics")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the result here too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    if "G_ema" not in model.networks:
        raise SystemExit(f"{args.checkpoint} has no EMA generator (G_ema)")
    result = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    result["copied"] = score(model, args.features)
    print(json.dumps(result["copied"]), flush=True)
    restats(model.networks["G_ema"], model.cfg.z_dim, args.batches, args.batch, args.seed)
    result["re-estimated"] = score(model, args.features)
    print(json.dumps(result["re-estimated"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
