"""Self-conditioning: k-means clusters of the training images stand in for class labels.

A GAN with `model.clusters=K` is trained as a conditional GAN on the cluster of each real image
(its nearest centroid) and stays unconditional to its users: the first coordinate of z picks the
cluster with the clusters' share of the training set as probability, the rest of z is the code.
Liu et al. 2020 ("Diverse Image Generation via Self-Conditioned GANs") cluster D's features;
here the clusters come from the pixels, once, before the first step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Lloyd's algorithm on a subsample: written here because scikit-learn is not a dependency and the
# whole fit is a few seconds of matrix products.
FIT_IMAGES = 10_000
FIT_ITERS = 20
MAX_SIDE = 32
_CHUNK = 4096


def pool_factor(height: int, width: int) -> int:
    """The area-averaging factor that brings the longer side to <= MAX_SIDE pixels."""
    return -(-max(height, width) // MAX_SIDE)


def cluster_view(images: Tensor) -> Tensor:
    """Images in [0, 1] as the flat vectors k-means compares (area-averaged to <= 32 a side)."""
    f = pool_factor(*images.shape[-2:])
    x = images.float()
    if f > 1:
        x = F.avg_pool2d(x, f, ceil_mode=True)
    return x.flatten(1)


def assign(x: Tensor, centroids: Tensor) -> Tensor:
    """The index of each row's nearest centroid (squared Euclidean distance)."""
    c = centroids.to(x.dtype)
    out = []
    for i in range(0, len(x), _CHUNK):
        xi = x[i : i + _CHUNK]
        d = (c * c).sum(1) - 2 * xi @ c.T  # |x|^2 is the same for every centroid
        out.append(d.argmin(1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=x.device)


def kmeans(x: Tensor, k: int, seed: int, iters: int = FIT_ITERS) -> Tensor:
    """(k, D) centroids of the rows of x: k-means++ seeding, then Lloyd's iterations."""
    if len(x) < k:
        raise ValueError(f"{k} clusters need at least {k} images, got {len(x)}")
    g = torch.Generator().manual_seed(seed)
    x = x.double()
    c = x[torch.randint(len(x), (1,), generator=g)]
    nearest = ((x - c) ** 2).sum(1)
    for _ in range(k - 1):
        pick = torch.multinomial(nearest + 1e-12, 1, generator=g)
        c = torch.cat([c, x[pick]])
        nearest = torch.minimum(nearest, ((x - x[pick]) ** 2).sum(1))
    for _ in range(iters):
        a = assign(x, c)
        sums = torch.zeros_like(c).index_add_(0, a, x)
        counts = torch.bincount(a, minlength=k).unsqueeze(1)
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)  # an empty cluster stays put
    return c.float()


def _views(images: Tensor) -> Tensor:
    """cluster_view of uint8 images, a slice at a time (large photos stay small in memory)."""
    return torch.cat(
        [cluster_view(images[i : i + 256].float() / 255) for i in range(0, len(images), 256)]
    )


def shares(images: Tensor, centroids: Tensor) -> Tensor:
    """Each cluster's share of uint8 (N, C, H, W) images, by nearest centroid."""
    counts = torch.zeros(len(centroids))
    for i in range(0, len(images), _CHUNK):
        a = assign(_views(images[i : i + _CHUNK]), centroids)
        counts += torch.bincount(a, minlength=len(centroids))
    return counts / counts.sum()


def fit(images: Tensor, k: int, seed: int) -> tuple[Tensor, Tensor]:
    """Centroids of uint8 (N, C, H, W) images from a seeded subsample, and each cluster's share of
    all the images."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(images), generator=g)[:FIT_IMAGES]
    centroids = kmeans(_views(images[pick]), k, seed)
    return centroids, shares(images, centroids)


def normal_cuts(prior: Tensor) -> Tensor:
    """Thresholds on a standard normal z0 that split it into the clusters with these shares."""
    return _normal_quantiles(prior.double().cumsum(0)[:-1])


def middle_z0(labels: Tensor, prior: Tensor) -> Tensor:
    """A standard normal z0 in the middle (by probability) of each label's cluster."""
    p = prior.double()
    return _normal_quantiles(p.cumsum(0) - p / 2)[labels]


def _normal_quantiles(p: Tensor) -> Tensor:
    return torch.special.ndtri(p.clamp(1e-12, 1 - 1e-12)).float()


def cluster_of(z0: Tensor, cuts: Tensor) -> Tensor:
    """The cluster a standard normal z0 (N,) falls in: the number of cuts below it."""
    return (z0.unsqueeze(1) > cuts).sum(1)
