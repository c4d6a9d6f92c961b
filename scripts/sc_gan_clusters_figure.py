"""docs/sc-gan-clusters.png: what a self-conditioned GAN's clusters are and what it draws in each.

One row per cluster, largest share first: the cluster's centroid (the mean of its training
images), a blank, then images the generator draws in that cluster from the same seed's codes.

.venv/bin/python scripts/sc_gan_clusters_figure.py RUN [--rows 10] [-n 10] [-o OUT.png]
    [--labels fashion-mnist]   # also print each cluster's largest class and the clusters' purity
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


def _class_counts(model, source: str, c: int, h: int, w: int) -> tuple[torch.Tensor, list[str]]:
    """(clusters, classes) counts of a labelled source's training images, by nearest centroid."""
    from pixelsmith.data.sources import load_images
    from pixelsmith.models.clusters import assign, cluster_view

    data = load_images(source, split="train", channels=c, size=(h, w))
    counts = torch.zeros(model.cfg.clusters, len(data.classes))
    D = model.networks["D"]
    for i in range(0, len(data), 4096):
        k = assign(cluster_view(data.images[i : i + 4096].float() / 255), D.centroids)
        counts.index_put_(
            (k, data.labels[i : i + 4096].long()), torch.ones(len(k)), accumulate=True
        )
    return counts, list(data.classes)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a run or checkpoint trained with model.clusters > 0")
    p.add_argument("--rows", type=int, default=10, help="clusters shown, largest first")
    p.add_argument("-n", type=int, default=10, help="images per row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", default=str(ROOT / "docs" / "sc-gan-clusters.png"))
    p.add_argument("--labels", help="a labelled source of the run's images, e.g. fashion-mnist")
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
    classes = _class_counts(model, a.labels, c, h, w) if a.labels else None
    z = model.latent_prior(a.n, a.seed)[:, 1:]
    blank = torch.ones(1, c, h, w)
    tiles = []
    with model.inference("G") as G, torch.no_grad():
        for k in prior.argsort(descending=True)[: a.rows].tolist():
            zk = torch.cat([torch.zeros(a.n, 1), z], 1)  # z0 is ignored once the label is given
            drawn = ((G(zk, torch.full((a.n,), k)) + 1) / 2).clamp(0, 1)
            tiles += [means[k : k + 1], blank, drawn]
            line = f"cluster {k}: {float(prior[k]):.1%} of the training images"
            if classes is not None:
                top, names = classes[0][k], classes[1]
                line += f", {float(top.max() / top.sum()):.0%} {names[int(top.argmax())]}"
            print(line)
    if classes is not None:
        print(f"purity: {float(classes[0].amax(1).sum() / classes[0].sum()):.3f}")
    out = save_image(torch.cat(tiles), a.out, nrow=a.n + 2, scale=3)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
