"""Membership inference: how well can an attacker tell the images a model trained on (members)
from images it never saw (non-members)?

Two attacks, each a score per image where higher means "member":
- classifiers: the loss-threshold attack (Yeom et al. 2018), the negative cross-entropy of the
  image's true label: a model that memorised its training set is surer of its members.
- generators: the distance to the closest generated sample (Hilprecht et al. 2019; Chen et al.
  2020's GAN-leaks, full black box): a generator that copies its training images lands samples
  nearer to them than to unseen ones.

The report gives the ROC AUC, the true-positive rate at 1% and 0.1% false positives (Carlini et
al. 2022 argue that the low-FPR rates are what matters) and the best advantage, max(TPR - FPR).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.errors import UserError


def roc(member: Tensor, nonmember: Tensor) -> tuple[Tensor, Tensor]:
    """(FPR, TPR) over every threshold, ties taken together, from (0, 0) to (1, 1)."""
    if len(member) == 0 or len(nonmember) == 0:
        raise UserError("membership needs at least one member and one non-member image")
    s = torch.cat([member, nonmember]).double()
    y = torch.cat([torch.ones(len(member)), torch.zeros(len(nonmember))]).double()
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order]
    last = torch.cat([s[1:] != s[:-1], torch.tensor([True])])  # the end of each run of ties
    tp, fp = torch.cumsum(y, 0)[last], torch.cumsum(1 - y, 0)[last]
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fp / len(nonmember)]), torch.cat([zero, tp / len(member)])


def membership_report(member: Tensor, nonmember: Tensor) -> dict[str, float]:
    """AUC, TPR at 1% and 0.1% FPR, and the best advantage, from the attack's scores."""
    fpr, tpr = roc(member, nonmember)
    auc = float(torch.trapezoid(tpr, fpr))

    def tpr_at(limit: float) -> float:
        return float(tpr[fpr <= limit].max())

    return {
        "auc": round(auc, 4),
        "tpr_at_1pct_fpr": round(tpr_at(0.01), 4),
        "tpr_at_0.1pct_fpr": round(tpr_at(0.001), 4),
        "advantage": round(float((tpr - fpr).max()), 4),
        "members": len(member),
        "non_members": len(nonmember),
    }


@torch.no_grad()
def loss_scores(model: nn.Module, images: Tensor, labels: Tensor, batch: int = 500) -> Tensor:
    """The loss-threshold attack's scores: minus each image's cross-entropy under `model`."""
    model.eval()
    out = [
        -F.cross_entropy(model(images[i : i + batch]), labels[i : i + batch], reduction="none")
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out)


@torch.no_grad()
def nearest_sample_scores(samples: Tensor, images: Tensor, batch: int = 500) -> Tensor:
    """Minus each image's L2 distance to its closest generated sample (pixels in [0, 1])."""
    flat = samples.flatten(1).float()
    out = []
    for i in range(0, len(images), batch):
        d = torch.cdist(images[i : i + batch].flatten(1).float(), flat)
        out.append(-d.min(dim=1).values)
    return torch.cat(out)
