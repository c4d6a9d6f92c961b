"""docs/sc-gan-clusters.png: what a self-conditioned GAN's clusters are and what it draws in each.

One row per cluster, largest share first: the cluster's centroid (the mean of its training
images), a blank, then images the generator draws in that cluster from the same seed's codes.

.venv/bin/python scripts/sc_gan_clusters_figure.py RUN [--rows 10] [-n 10] [-o OUT.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelsmith.generate.load import load_model  # noqa: E402
from pixelsmith.imageio import save_image  # noqa: E402
from pixelsmith.models.clusters import pool_factor  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a run or checkpoint trained with model.clusters > 0")
    p.add_argument("--rows", type=int, default=10, help="clusters shown, largest first")
    p.add_argument("-n", type=int, default=10, help="images per row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", default=str(ROOT / "docs" / "sc-gan-clusters.png"))
    a = p.parse_args()
    model = load_model(a.model, device="cpu")
    if not getattr(model.cfg, "clusters", 0):
        sys.exit(f"{a.model} was not trained with model.clusters")
    c, h, w = model.image_shape
    centroids = model.networks["D"].centroids
    side = pool_factor(h, w)
    means = centroids.view(-1, c, -(-h // side), -(-w // side))
    means = F.interpolate(means, (h, w), mode="nearest") if side > 1 else means
    prior = model.networks["G_ema"].prior
    z = model.latent_prior(a.n, a.seed)[:, 1:]
    blank = torch.ones(1, c, h, w)
    tiles = []
    with model.inference("G") as G, torch.no_grad():
        for k in prior.argsort(descending=True)[: a.rows].tolist():
            zk = torch.cat([torch.zeros(a.n, 1), z], 1)  # z0 is ignored once the label is given
            drawn = ((G(zk, torch.full((a.n,), k)) + 1) / 2).clamp(0, 1)
            tiles += [means[k : k + 1], blank, drawn]
            print(f"cluster {k}: {float(prior[k]):.1%} of the training images")
    out = save_image(torch.cat(tiles), a.out, nrow=a.n + 2, scale=3)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
