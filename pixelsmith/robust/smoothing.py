"""Certified robustness by randomised smoothing (Cohen, Rosenfeld and Kolter 2019).

The smoothed classifier g(x) is the class a base classifier f most often gives to x + N(0, s^2 I).
If the top class's probability is at least p_A > 1/2, g's answer cannot change within the L2
radius s * Phi^-1(p_A). `certify` follows the paper's CERTIFY: n0 noisy draws choose the class,
n more estimate p_A's one-sided Clopper-Pearson lower bound at confidence 1 - alpha; below 1/2 it
abstains. So with probability at least 1 - alpha over the noise, a certified radius is a true
one. `predict` is the paper's PREDICT (a two-sided binomial test between the top two classes).

The binomial bounds are computed here from the binomial tail in log space (bisection on p), so
no statistics package is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from pixelsmith.errors import UserError

ABSTAIN = -1


def _log_tail(k: int, n: int, p: float) -> float:
    """log P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 0.0
    if p <= 0:
        return -math.inf
    if p >= 1:
        return 0.0
    j = torch.arange(k, n + 1, dtype=torch.float64)
    logpmf = (
        torch.lgamma(torch.tensor(n + 1.0, dtype=torch.float64))
        - torch.lgamma(j + 1)
        - torch.lgamma(n - j + 1)
        + j * math.log(p)
        + (n - j) * math.log1p(-p)
    )
    return float(torch.logsumexp(logpmf, 0))


def lower_confidence_bound(k: int, n: int, alpha: float) -> float:
    """The one-sided Clopper-Pearson lower bound on p after k successes in n trials: the p at
    which P(X >= k) = alpha (0 when k = 0)."""
    if not 0 <= k <= n or n < 1:
        raise UserError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if k == 0:
        return 0.0
    lo, hi, target = 0.0, 1.0, math.log(alpha)
    for _ in range(100):  # P(X >= k) rises with p
        mid = (lo + hi) / 2
        if _log_tail(k, n, mid) < target:
            lo = mid
        else:
            hi = mid
    return lo


def _binom_two_sided_p(k: int, n: int) -> float:
    """The two-sided p-value of k successes in n trials against p = 1/2."""
    tail = min(k, n - k)
    return min(1.0, 2 * math.exp(_log_tail(n - tail, n, 0.5)))


@dataclass(frozen=True)
class Certificate:
    """Per image: the smoothed prediction (ABSTAIN = -1) and its certified L2 radius (0 when
    abstaining), with the lower bound on the top class's probability."""

    prediction: Tensor  # (N,) long
    radius: Tensor  # (N,) float
    p_lower: Tensor  # (N,) float


def _counts(model: Callable[[Tensor], Tensor], x: Tensor, sigma: float, n: int, batch: int,
            gen: torch.Generator) -> Tensor:  # fmt: skip
    """Class counts (K,) of the base classifier on n noisy copies of one image x (C, H, W)."""
    counts: Tensor | None = None
    with torch.no_grad():
        done = 0
        while done < n:
            m = min(batch, n - done)
            noise = torch.randn((m, *x.shape), generator=gen).to(x.device, x.dtype) * sigma
            logits = model(x[None] + noise)
            if logits.ndim != 2:
                raise UserError(f"the model must give (N, K) logits, got {tuple(logits.shape)}")
            c = torch.bincount(logits.argmax(1).cpu(), minlength=logits.shape[1])
            counts = c if counts is None else counts + c
            done += m
    assert counts is not None
    return counts


def _check(x: Tensor, sigma: float, n0: int, n: int, alpha: float) -> None:
    if x.ndim != 4:
        raise UserError(f"certify takes (N, C, H, W) images, got {tuple(x.shape)}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise UserError(f"the smoothing noise sigma must be positive, got {sigma}")
    if n0 < 1 or n < 1:
        raise UserError(f"certify needs n0 >= 1 and n >= 1 noisy draws, got {n0} and {n}")
    if not 0 < alpha < 1:
        raise UserError(f"alpha is a probability in (0, 1), got {alpha}")


def certify(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    sigma: float,
    n0: int = 100,
    n: int = 1000,
    alpha: float = 0.001,
    batch: int = 500,
    seed: int = 0,
) -> Certificate:
    """Cohen et al.'s CERTIFY for each image of x (N, C, H, W) (see the module doc)."""
    _check(x, sigma, n0, n, alpha)
    gen = torch.Generator().manual_seed(seed)
    preds, radii, lows = [], [], []
    for image in x:
        guess = int(_counts(model, image, sigma, n0, batch, gen).argmax())
        k = int(_counts(model, image, sigma, n, batch, gen)[guess])
        p = lower_confidence_bound(k, n, alpha)
        lows.append(p)
        if p < 0.5:
            preds.append(ABSTAIN)
            radii.append(0.0)
        else:
            preds.append(guess)
            radii.append(sigma * float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64))))
    return Certificate(torch.tensor(preds), torch.tensor(radii), torch.tensor(lows))


def predict(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    sigma: float,
    n: int = 1000,
    alpha: float = 0.001,
    batch: int = 500,
    seed: int = 0,
) -> Tensor:
    """Cohen et al.'s PREDICT: the smoothed class of each image, or ABSTAIN when the top two
    classes cannot be told apart at level alpha."""
    _check(x, sigma, 1, n, alpha)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for image in x:
        counts = _counts(model, image, sigma, n, batch, gen)
        top2 = counts.topk(min(2, len(counts)))
        a, b = int(top2.values[0]), int(top2.values[1]) if len(counts) > 1 else 0
        keep = _binom_two_sided_p(a, a + b) <= alpha
        out.append(int(top2.indices[0]) if keep else ABSTAIN)
    return torch.tensor(out)


def certified_accuracy(cert: Certificate, labels: Tensor, radii: list[float]) -> list[float]:
    """The share of images certified correct at each L2 radius (abstentions count as wrong)."""
    ok = (cert.prediction == labels.cpu()).float()
    return [float((ok * (cert.radius >= r).float()).mean()) for r in radii]
