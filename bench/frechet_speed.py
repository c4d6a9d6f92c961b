"""Fréchet distance speed: pixelsmith's eigh-based form against pytorch-fid's scipy.linalg.sqrtm.

Builds two correlated feature sets (default 10k x 2048, random low-rank factors plus noise after
a ReLU, like pooled Inception activations), then times in one run, side by side:

- the statistics: `FeatureStats` over batches of 500 vs `np.mean` / `np.cov` (pytorch-fid);
- the distance: `frechet_distance` on the precomputed `FeatureStats` vs pytorch-fid's
  `calculate_frechet_distance` (sqrtm of sigma1 @ sigma2, real part, offset retry if not finite),

and prints the times, their ratio and the difference of the two FID values. sqrtm (scipy 1.17)
takes 15-100 s at d=2048 on the shared 2-core machines, so it runs once; LAPACK with 2 threads on a
loaded machine swings several-fold, and --threads 1 gives the steadier ratio.
Usage: `.venv/bin/python bench/frechet_speed.py [--threads 2]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> None:
    """Run the comparison and print the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="samples per set")
    ap.add_argument("--dim", type=int, default=2048, help="feature dimension")
    ap.add_argument("--rank", type=int, default=256, help="rank of the shared factors")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="runs of the (fast) eigh path")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy/scipy load their BLAS

    import numpy as np
    import torch
    from scipy import linalg

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pixelsmith.metrics.distribution import FeatureStats, frechet_distance

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    n, d, r = args.n, args.dim, args.rank

    def features(w: torch.Tensor, noise: float, offset: float) -> torch.Tensor:
        z = torch.randn(n, r, generator=gen)
        return torch.relu(z @ w + noise * torch.randn(n, d, generator=gen) + offset)

    w = torch.randn(r, d, generator=gen) / r**0.5
    fa = features(w, 0.5, 0.3)
    fb = features(w + 0.1 * torch.randn(r, d, generator=gen) / r**0.5, 0.55, 0.32)
    print(f"features: 2 x ({n}, {d}) float32, rank {r} + noise, ReLU; {args.threads} threads")

    t = time.perf_counter()
    sa, sb = FeatureStats(), FeatureStats()
    for i in range(0, n, 500):
        sa.update(fa[i : i + 500])
        sb.update(fb[i : i + 500])
    t_stats = time.perf_counter() - t

    a64, b64 = fa.double().numpy(), fb.double().numpy()
    t = time.perf_counter()
    mu1, sigma1 = np.mean(a64, axis=0), np.cov(a64, rowvar=False)
    mu2, sigma2 = np.mean(b64, axis=0), np.cov(b64, rowvar=False)
    t_stats_np = time.perf_counter() - t
    cov_err = float(np.abs(sa.cov.numpy() - sigma1).max() / np.abs(sigma1).max())

    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fid = frechet_distance(sa, sb)
        times.append(time.perf_counter() - t)
    t_fd = sorted(times)[len(times) // 2]

    t = time.perf_counter()
    fid_ref = pytorch_fid_distance(mu1, sigma1, mu2, sigma2, np, linalg)
    t_ref = time.perf_counter() - t

    print(f"stats     FeatureStats (batches of 500) {t_stats:8.2f} s")
    print(
        f"stats     np.mean + np.cov               {t_stats_np:8.2f} s  (max rel cov diff "
        f"{cov_err:.1e})"
    )
    print(
        f"distance  pixelsmith frechet_distance    {t_fd:8.2f} s  (median of {args.repeats}: "
        + ", ".join(f"{x:.2f}" for x in times)
        + ")"
    )
    print(f"distance  scipy.linalg.sqrtm (pytorch-fid) {t_ref:6.2f} s")
    print(f"speed-up  {t_ref / t_fd:.1f}x")
    print(
        f"FID       pixelsmith {fid:.9f}  scipy {fid_ref:.9f}  |diff| {abs(fid - fid_ref):.2e} "
        f"(rel {abs(fid - fid_ref) / abs(fid_ref):.1e})"
    )


def pytorch_fid_distance(mu1, sigma1, mu2, sigma2, np, linalg, eps: float = 1e-6) -> float:
    """pytorch-fid's calculate_frechet_distance (v0.3), with scipy.linalg.sqrtm."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if isinstance(covmean, tuple):  # older scipy with disp=False
        covmean = covmean[0]
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real  # pytorch-fid raises if the imaginary part exceeds 1e-3
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


if __name__ == "__main__":
    main()
