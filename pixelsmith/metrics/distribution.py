"""Distribution metrics on feature vectors: FID, KID, Inception Score, precision and recall.

Features are 2-D (N, D) torch tensors or numpy arrays (one row per image); logits are (N, K).
Statistics are accumulated in float64. Streaming forms for evaluation loops:

- `FeatureStats`: mean and covariance in memory flat in N, for `frechet_distance` (FID);
- `FeatureBank`: keeps the feature rows (optionally a seeded uniform reservoir of at most
  `max_samples`), for `kernel_inception_distance` (KID) and `precision_recall`;
- `InceptionScoreMeter`: a `FeatureBank` of logits whose `compute()` gives the Inception Score.

Bad input raises `pixelsmith.errors.UserError` rather than producing NaN. `frechet_distance` warns
(`UserWarning`) when a set has no more samples than dimensions (n <= D): its covariance is then
singular (rank <= n - 1), and the distance is still computed, but it is biased: like every FID
from few samples, only much more so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pixelsmith.errors import UserError, warn

__all__ = [
    "FeatureBank",
    "FeatureStats",
    "InceptionScoreMeter",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "precision_recall",
]

Features = Tensor | np.ndarray


def _as_2d(x: Any, what: str = "features") -> Tensor:
    """A validated (N, D) floating tensor (float64 if the input was not floating) on its device."""
    if isinstance(x, FeatureBank):
        x = x.features()
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    elif not isinstance(x, Tensor):
        raise UserError(f"{what} must be a torch tensor or numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise UserError(f"{what} must be 2-D (N, D), got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise UserError(f"{what} have zero dimensions (shape {tuple(x.shape)})")
    x = x.detach()
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise UserError(f"{what} contain NaN or infinite values; check the network's outputs")
    return x


def _same_dim(da: int, db: int, what: str = "feature") -> None:
    if da != db:
        raise UserError(
            f"{what} dimensions differ ({da} vs {db}); both sets must come from the same layer"
        )


class FeatureStats:
    """Streaming float64 mean and covariance of feature rows, with memory flat in N.

    Each batch is reduced to its own mean and centred scatter matrix (two-pass, so exact) and
    merged with Chan et al.'s pairwise update. A running sum of outer products would cost the
    same, but its covariance sum(x x^T) - n mu mu^T cancels catastrophically when the means are
    large against the spread (post-ReLU activations), losing digits even in float64; the merged
    centred form does not. The state lives on the device of the first batch.
    """

    def __init__(self, dim: int | None = None) -> None:
        self.n = 0
        self.dim = dim
        self._mean: Tensor | None = None
        self._m2: Tensor | None = None  # sum over rows of (x - mean)(x - mean)^T

    @classmethod
    def from_features(cls, feats: Features) -> FeatureStats:
        """Statistics of one (N, D) feature set."""
        stats = cls()
        stats.update(feats)
        return stats

    @classmethod
    def from_moments(cls, mean: Features, cov: Features, n: int) -> FeatureStats:
        """Statistics with a given mean (D,), unbiased covariance (D, D) and sample count n >= 2."""
        mean_t = torch.as_tensor(mean, dtype=torch.float64)
        cov_t = torch.as_tensor(cov, dtype=torch.float64, device=mean_t.device)
        if mean_t.ndim != 1 or cov_t.shape != (len(mean_t), len(mean_t)):
            raise UserError(
                f"mean must be (D,) and cov (D, D), got {tuple(mean_t.shape)} and "
                f"{tuple(cov_t.shape)}"
            )
        if n < 2:
            raise UserError(f"a covariance needs at least 2 samples, got n={n}")
        if not (bool(torch.isfinite(mean_t).all()) and bool(torch.isfinite(cov_t).all())):
            raise UserError("mean or covariance contain NaN or infinite values")
        stats = cls(len(mean_t))
        stats.n, stats._mean, stats._m2 = int(n), mean_t.clone(), cov_t * (n - 1)
        return stats

    def update(self, feats: Features) -> FeatureStats:
        """Add a batch of feature rows (N, D); returns self."""
        x = _as_2d(feats)
        if self.dim is not None:
            _same_dim(self.dim, x.shape[1])
        if len(x) == 0:
            return self
        device = self._mean.device if self._mean is not None else x.device
        x = x.to(device=device, dtype=torch.float64)
        mean = x.mean(0)
        self._merge(len(x), mean, centred=x - mean)
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add the samples summarised by another FeatureStats (e.g. from another process)."""
        if self.dim is not None and other.dim is not None:
            _same_dim(self.dim, other.dim)
        if other.n:
            device = self._mean.device if self._mean is not None else other._mean.device
            self._merge(other.n, other._mean.to(device), m2=other._m2.to(device))
        elif self.dim is None:
            self.dim = other.dim
        return self

    def _merge(
        self, nb: int, mean_b: Tensor, m2: Tensor | None = None, centred: Tensor | None = None
    ) -> None:
        """Chan's update with a batch given by its scatter m2 or its centred rows."""
        if self.n == 0:
            self.n, self.dim, self._mean = nb, len(mean_b), mean_b.clone()
            self._m2 = m2.clone() if m2 is not None else centred.T @ centred
            return
        n = self.n + nb
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (nb / n)
        if m2 is not None:
            self._m2.add_(m2)
        else:
            self._m2.addmm_(centred.T, centred)
        self._m2.addr_(delta, delta, alpha=self.n * nb / n)
        self.n = n

    @property
    def mean(self) -> Tensor:
        """Mean feature vector (D,), float64."""
        if self._mean is None:
            raise UserError("no features were added; a mean needs at least 1 sample")
        return self._mean

    @property
    def cov(self) -> Tensor:
        """Unbiased covariance (D, D), float64, dividing by N - 1 as np.cov and pytorch-fid do."""
        if self._m2 is None or self.n < 2:
            raise UserError(f"a covariance needs at least 2 samples, got {self.n}")
        return self._m2 / (self.n - 1)

    def state_dict(self) -> dict[str, Tensor]:
        """Plain CPU tensors {n, mean, m2} (m2: centred scatter), e.g. for safetensors caches."""
        dim = self.dim or 0
        mean = self._mean if self._mean is not None else torch.zeros(dim, dtype=torch.float64)
        m2 = self._m2 if self._m2 is not None else torch.zeros(dim, dim, dtype=torch.float64)
        return {
            "n": torch.tensor(self.n, dtype=torch.int64),
            "mean": mean.detach().cpu().clone(),
            "m2": m2.detach().cpu().clone(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> FeatureStats:
        """Rebuild statistics saved by state_dict()."""
        missing = {"n", "mean", "m2"} - set(state)
        if missing:
            raise UserError(f"feature statistics lack the keys {sorted(missing)}")
        n, mean, m2 = int(state["n"]), state["mean"].double(), state["m2"].double()
        if mean.ndim != 1 or m2.shape != (len(mean), len(mean)) or n < 0:
            raise UserError("feature statistics are malformed: expected mean (D,) and m2 (D, D)")
        stats = cls(len(mean) or None)
        if n:
            stats.n, stats._mean, stats._m2 = n, mean.clone(), m2.clone()
        return stats

    def __repr__(self) -> str:
        return f"FeatureStats(n={self.n}, dim={self.dim})"


class FeatureBank:
    """Keeps feature rows for KID and precision/recall, optionally a capped uniform sample.

    With `max_samples` set, the bank is a reservoir (Algorithm R, seeded): after any number of
    rows it holds a uniform random subset of `max_samples` of them, in memory bounded by the cap.
    Rows are stored detached on `device` (CPU by default, to spare accelerator memory).
    """

    def __init__(
        self, max_samples: int | None = None, seed: int = 0, device: str | torch.device = "cpu"
    ) -> None:
        if max_samples is not None and max_samples < 1:
            raise UserError(f"max_samples must be at least 1, got {max_samples}")
        self.max_samples = max_samples
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.seen = 0
        self.dim: int | None = None
        self._chunks: list[Tensor] = []
        self._stored = 0

    def update(self, feats: Features) -> FeatureBank:
        """Add a batch of rows (N, D); returns self."""
        x = _as_2d(feats)
        if self.dim is not None:
            _same_dim(self.dim, x.shape[1])
        self.dim = x.shape[1]
        x = x.to(self.device)
        cap = self.max_samples
        take = len(x) if cap is None else min(len(x), cap - self._stored)
        if take > 0:
            self._chunks.append(x[:take].clone())
            self._stored += take
        rest = x[take:]
        if len(rest):
            # Algorithm R: row number t (0-based over the stream) replaces slot j ~ U{0..t} if
            # j < cap; when two rows hit one slot the later must win, as the dict keeps it.
            bank = self.features()
            t = torch.arange(self.seen + take, self.seen + len(x), dtype=torch.float64)
            u = torch.rand(len(rest), generator=self.generator, dtype=torch.float64)
            j = (u * (t + 1)).long()
            hits = {int(slot): i for i, slot in enumerate(j.tolist()) if slot < cap}
            if hits:
                slots = torch.tensor(list(hits.keys()), device=bank.device)
                bank[slots] = rest[torch.tensor(list(hits.values()), device=rest.device)]
            self._chunks = [bank]
        self.seen += len(x)
        return self

    def features(self) -> Tensor:
        """The stored rows (n, D); reservoir updates overwrite them in place (clone to keep)."""
        if not self._chunks:
            raise UserError("the feature bank is empty; call update() with features first")
        if len(self._chunks) > 1:
            self._chunks = [torch.cat(self._chunks)]
        return self._chunks[0]

    def __len__(self) -> int:
        return self._stored


class InceptionScoreMeter(FeatureBank):
    """Collects classifier logits (N, K) batch by batch; `compute()` gives the Inception Score."""

    def compute(self, splits: int = 10, seed: int = 0) -> tuple[float, float]:
        """Inception Score (mean, std) of the logits collected so far."""
        return inception_score(self.features(), splits=splits, seed=seed)


def _stats(x: FeatureStats | FeatureBank | Features) -> FeatureStats:
    return x if isinstance(x, FeatureStats) else FeatureStats.from_features(_as_2d(x))


def frechet_distance(
    a: FeatureStats | FeatureBank | Features, b: FeatureStats | FeatureBank | Features
) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID on Inception features).

    ||mu_a - mu_b||^2 + tr(Ca) + tr(Cb) - 2 tr((Ca^1/2 Cb Ca^1/2)^1/2), in float64 with
    symmetric eigendecompositions (no scipy.linalg.sqrtm); round-off negative eigenvalues are
    clamped to 0. Warns when a set has n <= D samples (singular covariance, strongly biased FID).
    """
    sa, sb = _stats(a), _stats(b)
    for name, s in (("first", sa), ("second", sb)):
        if s.n < 2:
            raise UserError(f"the {name} set has {s.n} samples; FID needs at least 2")
    _same_dim(sa.dim, sb.dim)
    for name, s in (("first", sa), ("second", sb)):
        if s.n <= s.dim:  # rank(cov) <= n - 1
            warn(
                f"the {name} set has {s.n} samples of {s.dim}-dim features, so its covariance is "
                f"singular; FID is still computed but biased: use well over {s.dim} samples"
            )
    ca = sa.cov
    cb = sb.cov.to(ca.device)
    # For any factor Ca = L L^T, L^T Cb L has the eigenvalues of Ca^1/2 Cb Ca^1/2 (both share
    # those of Ca Cb), so only eigenvalues are needed. Cholesky gives L in a sixth of eigh's time;
    # a singular Ca (too few samples, dead features) falls back to L = V diag(sqrt w) from eigh.
    lfac, info = torch.linalg.cholesky_ex(ca)
    if int(info) != 0:
        w, v = torch.linalg.eigh(ca)
        lfac = v * w.clamp_min(0).sqrt()
    m = lfac.T @ cb @ lfac
    eig = torch.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = eig.clamp_min(0).sqrt().sum()
    diff = sa.mean - sb.mean.to(sa.mean.device)
    fd = float(diff @ diff + ca.trace() + cb.trace() - 2 * tr_sqrt)
    return max(fd, 0.0)  # the exact value is >= 0; only round-off can push it below


def kernel_inception_distance(
    a: FeatureBank | Features,
    b: FeatureBank | Features,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and std over random subsets of the unbiased MMD^2 (Bińkowski et al. 2018).

    Kernel k(x, y) = (gamma x.y + coef0)^degree with gamma = 1/D by default, as in torch-fidelity
    and stylegan2-ada. Each subset draws `subset_size` rows of a, then of b, without replacement
    (torch.randperm with a generator seeded by `seed`). If a set is smaller than `subset_size`,
    subset_size becomes min(n_a, n_b) with a warning. The std is over subsets (ddof 0).
    """
    x, y = _as_2d(a), _as_2d(b)
    _same_dim(x.shape[1], y.shape[1])
    if subsets < 1:
        raise UserError(f"subsets must be at least 1, got {subsets}")
    m = subset_size
    if min(len(x), len(y)) < m:
        m = min(len(x), len(y))
        warn(
            f"KID subset_size {subset_size} exceeds the set sizes ({len(x)}, {len(y)}); using "
            f"subsets of {m}, so the value is noisier and not comparable with size {subset_size}"
        )
    if m < 2:
        raise UserError(f"KID needs at least 2 samples per set, got {len(x)} and {len(y)}")
    x, y = x.to(torch.float64), y.to(device=x.device, dtype=torch.float64)
    g = float(gamma) if gamma is not None else 1.0 / x.shape[1]
    gen = torch.Generator().manual_seed(int(seed))

    def kern(p: Tensor, q: Tensor) -> Tensor:
        return (p @ q.T * g + coef0) ** degree

    vals = []
    for _ in range(subsets):
        xs = x[torch.randperm(len(x), generator=gen)[:m].to(x.device)]
        ys = y[torch.randperm(len(y), generator=gen)[:m].to(y.device)]
        kxx, kyy = kern(xs, xs), kern(ys, ys)
        within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m - 1)
        vals.append((within - 2 * kern(xs, ys).mean() * m) / m)
    out = torch.stack(vals)
    return float(out.mean()), float(out.std(correction=0))


def inception_score(
    logits: FeatureBank | Features, splits: int = 10, seed: int = 0
) -> tuple[float, float]:
    """Inception Score (mean, std over splits) of classifier logits (N, K).

    p(y|x) = softmax(logits); the rows are shuffled by a permutation seeded with `seed` and cut
    into `splits` parts (sizes differing by at most 1); each part scores exp(mean_x KL(p(y|x) ||
    p(y))) with p(y) the part's mean. A uniform classifier gives 1, a confident classifier
    spread evenly over k classes gives k.
    """
    z = _as_2d(logits, "logits").to(torch.float64)
    if splits < 1 or len(z) < splits:
        raise UserError(f"inception_score needs 1 <= splits <= N, got splits={splits}, N={len(z)}")
    logp = torch.log_softmax(z, dim=1)
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(int(seed)))
    scores = []
    for part in torch.tensor_split(logp[perm.to(logp.device)], splits):
        p = part.exp()
        py = p.mean(0)
        # mean_x KL = mean_x sum_y p log p - sum_y p(y) log p(y); xlogy makes 0 log 0 = 0.
        kl = (p * part).sum(1).mean() - torch.special.xlogy(py, py).sum()
        scores.append(kl.exp())
    out = torch.stack(scores)
    return float(out.mean()), float(out.std(correction=0))


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances (len(a), len(b)) via the Gram expansion, clamped at 0."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T)
    return d2.clamp_min_(0)


def _knn_radii2(x: Tensor, k: int, batch: int) -> Tensor:
    """Squared distance of each row of x to its k-th nearest other row."""
    out = []
    for i in range(0, len(x), batch):
        d2 = _sq_dists(x[i : i + batch], x)
        rows = torch.arange(len(d2), device=x.device)
        d2[rows, rows + i] = math.inf  # exclude self explicitly; round-off may make it nonzero
        out.append(d2.kthvalue(k, dim=1).values)
    return torch.cat(out)


def _coverage(points: Tensor, centers: Tensor, radii2: Tensor, batch: int) -> float:
    """Fraction of points inside at least one ball (centers, squared radii)."""
    inside = 0
    for i in range(0, len(points), batch):
        inside += int((_sq_dists(points[i : i + batch], centers) <= radii2).any(1).sum())
    return inside / len(points)


def precision_recall(
    real: FeatureBank | Features,
    fake: FeatureBank | Features,
    k: int = 3,
    batch: int = 1024,
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls.

    Precision: fraction of fake rows within the k-NN radius of some real row; recall: fraction of
    real rows within the k-NN radius of some fake row (radii exclude the row itself; boundary
    counts as inside, as in stylegan2-ada). Distances are computed `batch` rows at a time, so
    memory is O(batch * N). They are computed in `dtype` after centring both sets on the real
    mean, which keeps the Gram expansion's cancellation small; pass torch.float64 for exactness.
    """
    r, f = _as_2d(real, "real features"), _as_2d(fake, "fake features")
    _same_dim(r.shape[1], f.shape[1])
    if k < 1 or min(len(r), len(f)) <= k:
        raise UserError(
            f"precision_recall needs 1 <= k < set size, got k={k} with {len(r)} real and "
            f"{len(f)} fake samples"
        )
    if batch < 1:
        raise UserError(f"batch must be at least 1, got {batch}")
    center = r.to(torch.float64).mean(0)
    r = (r.to(torch.float64) - center).to(dtype)
    f = (f.to(device=r.device, dtype=torch.float64) - center).to(dtype)
    real_r2, fake_r2 = _knn_radii2(r, k, batch), _knn_radii2(f, k, batch)
    return {
        "precision": _coverage(f, r, real_r2, batch),
        "recall": _coverage(r, f, fake_r2, batch),
    }
