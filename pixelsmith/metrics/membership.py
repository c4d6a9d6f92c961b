"""Membership inference: how well can an attacker tell the images a model trained on (members)
from images it never saw (non-members)?

Two attacks, each a score per image where higher means "member":
- classifiers: the loss-threshold attack (Yeom et al. 2018), the negative cross-entropy of the
  image's true label: a model that memorised its training set is surer of its members.
- generators: the distance to the closest generated sample (Hilprecht et al. 2019; Chen et al.
  2020's GAN-leaks, full black box): a generator that copies its training images lands samples
  nearer to them than to unseen ones.

- classifiers, stronger: the likelihood-ratio attack (LiRA, Carlini et al. 2022). Shadow models
  trained like the target on random halves of a pool give, per image, the spread of its
  logit-scaled confidence when it was in their training set and when it was not; the score is
  the log-likelihood ratio of the target's confidence under the two Gaussians (or, with only
  "out" shadows, how many standard deviations above the "out" mean it lies: the offline attack).

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


@torch.no_grad()
def logit_confidence(model: nn.Module, images: Tensor, labels: Tensor, batch: int = 500) -> Tensor:
    """LiRA's statistic: log(p / (1 - p)) of each image's true label, computed from the logits
    (the true logit minus the log-sum-exp of the others), so it stays finite as p nears 1."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        z = model(images[i : i + batch]).double()
        y = labels[i : i + batch]
        true = z.gather(1, y[:, None]).squeeze(1)
        others = z.scatter(1, y[:, None], float("-inf")).logsumexp(1)
        out.append(true - others)
    return torch.cat(out)


def lira_scores(target: Tensor, shadow: Tensor, shadow_in: Tensor) -> Tensor:
    """LiRA's membership score per image from the target's statistic (N,), the shadows' (K, N)
    and which shadows trained on which image (K, N, bool).

    Online (every image "in" and "out" of at least two shadows each): the log-likelihood ratio
    log N(t; mu_in, s_in) - log N(t; mu_out, s_out). Offline (no "in" shadows): (t - mu_out) /
    s_out. The spreads are pooled over images, as Carlini et al. advise for few shadows.
    """
    if shadow.shape != shadow_in.shape or shadow.shape[1:] != target.shape:
        raise UserError(
            f"LiRA needs (K, N) shadow statistics and membership for N={len(target)} images, got "
            f"{tuple(shadow.shape)} and {tuple(shadow_in.shape)}"
        )
    t, s, inside = target.double(), shadow.double(), shadow_in.bool()
    n_in, n_out = inside.sum(0), (~inside).sum(0)
    if int(n_out.min()) < 2:
        raise UserError("every image must be left out of at least two shadow models")
    mu_out = (s * ~inside).sum(0) / n_out
    sd_out = _pooled_sd(s, ~inside, mu_out)
    if int(n_in.max()) == 0:
        return ((t - mu_out) / sd_out).float()
    if int(n_in.min()) < 2:
        raise UserError("online LiRA needs every image inside at least two shadow models")
    mu_in = (s * inside).sum(0) / n_in
    sd_in = _pooled_sd(s, inside, mu_in)
    normal = torch.distributions.Normal
    return (normal(mu_in, sd_in).log_prob(t) - normal(mu_out, sd_out).log_prob(t)).float()


def _pooled_sd(values: Tensor, mask: Tensor, mean: Tensor) -> Tensor:
    """One standard deviation for all images: the root mean square of their deviations."""
    dev = ((values - mean) ** 2 * mask).sum()
    return (dev / (mask.sum() - mask.shape[1]).clamp(min=1)).sqrt().clamp(min=1e-6)
