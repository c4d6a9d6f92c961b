"""Distribution metrics: FID, KID, Inception Score, precision/recall, against closed forms and
straightforward numpy/scipy references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import linalg

from pixelsmith.errors import UserError
from pixelsmith.metrics.distribution import (
    FeatureBank,
    FeatureStats,
    InceptionScoreMeter,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)


def correlated(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """n correlated Gaussian rows in d dimensions with a large common offset."""
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + 5.0 + shift


def scipy_frechet(mu1: np.ndarray, c1: np.ndarray, mu2: np.ndarray, c2: np.ndarray) -> float:
    """pytorch-fid's formula with scipy.linalg.sqrtm."""
    covmean = linalg.sqrtm(c1 @ c2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# --- Fréchet distance and FeatureStats -------------------------------------------------------


def test_frechet_identical_sets_is_zero():
    a = correlated(np.random.default_rng(0), 500, 32)
    assert frechet_distance(a, a) <= 1e-6 * np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(torch.from_numpy(a).float(), a.astype(np.float32)) <= 1e-6


def test_frechet_commuting_covariances_closed_form():
    rng = np.random.default_rng(1)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    diag = frechet_distance(
        FeatureStats.from_moments(mu1, np.diag(s1), n=10_000),
        FeatureStats.from_moments(mu2, np.diag(s2), n=10_000),
    )
    assert diag == pytest.approx(want, rel=1e-10)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))  # same eigenvectors: the covariances commute
    rotated = frechet_distance(
        FeatureStats.from_moments(mu1, q @ np.diag(s1) @ q.T, n=10_000),
        FeatureStats.from_moments(mu2, q @ np.diag(s2) @ q.T, n=10_000),
    )
    assert rotated == pytest.approx(want, rel=1e-9)


def test_frechet_noncommuting_covariances_match_scipy_sqrtm():
    rng = np.random.default_rng(2)
    d = 64
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    c1, c2 = random_spd(rng, d), random_spd(rng, d)
    assert not np.allclose(c1 @ c2, c2 @ c1)
    got = frechet_distance(
        FeatureStats.from_moments(mu1, c1, n=1000), FeatureStats.from_moments(mu2, c2, n=1000)
    )
    assert got == pytest.approx(scipy_frechet(mu1, c1, mu2, c2), rel=1e-9)


def test_frechet_random_features_match_scipy_reference():
    rng = np.random.default_rng(3)
    a, b = correlated(rng, 500, 64), correlated(rng, 500, 64, shift=0.2)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    want = scipy_frechet(a.mean(0), ca, b.mean(0), cb)
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-6)
    stats = FeatureStats.from_features(torch.from_numpy(a)), FeatureStats.from_features(b)
    assert frechet_distance(*stats) == pytest.approx(want, rel=1e-6)


def test_feature_stats_streaming_uneven_batches_and_merge(tmp_path):
    from safetensors.torch import load_file, save_file

    rng = np.random.default_rng(4)
    x = correlated(rng, 400, 24) + 1e3  # large offset: a raw sum of squares would lose digits
    stats, cuts = FeatureStats(), [0, 1, 8, 108, 141, 400]
    for i, j in zip(cuts, cuts[1:], strict=False):
        stats.update(torch.from_numpy(x[i:j]) if i % 2 else x[i:j])
    assert stats.n == 400
    np.testing.assert_allclose(stats.mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov.numpy(), np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)

    merged = FeatureStats.from_features(x[:150]).merge(FeatureStats.from_features(x[150:]))
    merged.merge(FeatureStats())  # an empty one changes nothing
    empty_first = FeatureStats().merge(merged)
    for s in (merged, empty_first):
        assert s.n == 400
        np.testing.assert_allclose(s.cov.numpy(), np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)

    save_file(stats.state_dict(), str(tmp_path / "stats.safetensors"))
    back = FeatureStats.from_state_dict(load_file(str(tmp_path / "stats.safetensors")))
    assert back.n == 400 and torch.equal(back.mean, stats.mean) and torch.equal(back.cov, stats.cov)
    assert FeatureStats.from_state_dict(FeatureStats().state_dict()).n == 0


def test_frechet_warns_when_covariance_is_singular():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(10, 20)), rng.normal(size=(10, 20))
    with pytest.warns(UserWarning, match="singular"):
        assert frechet_distance(a, b) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance(rng.normal(size=(30, 20)), rng.normal(size=(30, 20)))


# --- KID ---------------------------------------------------------------------------------------


def numpy_mmd2_loops(x: np.ndarray, y: np.ndarray, degree=3, gamma=None, coef0=1.0) -> float:
    """Unbiased MMD^2, written as the plain double sums."""
    g = 1 / x.shape[1] if gamma is None else gamma
    m = len(x)

    def k(p, q):
        return (g * float(p @ q) + coef0) ** degree

    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return sxx + syy - 2 * sxy


def test_kid_matches_direct_double_sum():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(25, 5)), rng.normal(size=(25, 5)) + 0.4
    # one subset of every row: a permutation, and MMD^2 does not depend on the order
    got, std = kernel_inception_distance(x, y, subsets=1, subset_size=25)
    assert got == pytest.approx(numpy_mmd2_loops(x, y), rel=1e-10) and std == 0.0
    got, _ = kernel_inception_distance(
        x, y, subsets=2, subset_size=25, degree=2, gamma=0.5, coef0=0.3
    )
    assert got == pytest.approx(numpy_mmd2_loops(x, y, 2, 0.5, 0.3), rel=1e-10)


def test_kid_same_subset_draws_as_documented():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(60, 4)), rng.normal(size=(50, 4))
    gen = torch.Generator().manual_seed(3)
    want = []
    for _ in range(3):
        ix, iy = torch.randperm(60, generator=gen)[:20], torch.randperm(50, generator=gen)[:20]
        want.append(numpy_mmd2_loops(x[ix.numpy()], y[iy.numpy()]))
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=20, seed=3)
    assert mean == pytest.approx(np.mean(want), rel=1e-10)
    assert std == pytest.approx(np.std(want), rel=1e-8)


def test_kid_identical_sets_near_zero():
    a = np.random.default_rng(8).normal(size=(400, 16))
    mean, std = kernel_inception_distance(a, a, subsets=20, subset_size=100)
    # Each subset estimate is unbiased around 0 with spread std; the mean of correlated subsets
    # is off by at most about one subset's error, so 3 std is a generous, still tight bound.
    assert abs(mean) < 3 * std
    shifted, _ = kernel_inception_distance(a, a + 0.5, subsets=20, subset_size=100)
    assert shifted > 10 * std


def test_kid_is_unbiased_and_detects_shifts():
    # Fresh independent samples per repetition make the estimates i.i.d., so their mean over R
    # repetitions is within ~4 standard errors of the true value 0; the biased V-statistic (with
    # the diagonal) fails the same test, which shows the test has the power to see a bias.
    gen = torch.Generator().manual_seed(9)
    reps, m, d = 200, 20, 4
    unbiased, biased = [], []
    for _ in range(reps):
        x, y = torch.randn(m, d, generator=gen), torch.randn(m, d, generator=gen)
        unbiased.append(kernel_inception_distance(x, y, subsets=1, subset_size=m)[0])
        k = lambda p, q: (p.double() @ q.double().T / d + 1) ** 3  # noqa: E731
        biased.append(float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()))
    u, v = np.array(unbiased), np.array(biased)
    assert abs(u.mean()) < 4 * u.std() / np.sqrt(reps)
    assert v.mean() > 10 * v.std() / np.sqrt(reps)

    x, y = torch.randn(300, d, generator=gen), torch.randn(300, d, generator=gen) + 0.5
    mean, std = kernel_inception_distance(x, y, subsets=10, subset_size=100)
    assert mean > 5 * std > 0


def test_kid_small_sets_warn_and_shrink_subsets():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(40, 3))
    with pytest.warns(UserWarning, match="subsets of 30"):
        got = kernel_inception_distance(x, y, subsets=5, subset_size=1000)
    assert got == kernel_inception_distance(x, y, subsets=5, subset_size=30)


# --- Inception Score ---------------------------------------------------------------------------


def test_inception_score_uniform_and_perfect():
    mean, std = inception_score(torch.zeros(100, 7))
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    k = 6
    onehot = torch.nn.functional.one_hot(torch.arange(600) % k, k).double() * 200
    assert inception_score(onehot, splits=1)[0] == pytest.approx(k, rel=1e-12)
    mean, _ = inception_score(onehot, splits=10)  # random splits are only roughly balanced
    assert k * 0.95 < mean <= k


def test_inception_score_matches_numpy_and_is_seeded():
    logits = torch.randn(103, 5, generator=torch.Generator().manual_seed(11)) * 3
    perm = torch.randperm(103, generator=torch.Generator().manual_seed(4)).numpy()
    p = torch.softmax(logits.double(), 1).numpy()[perm]
    want = []
    for part in np.array_split(p, 4):
        py = part.mean(0, keepdims=True)
        want.append(np.exp((part * (np.log(part) - np.log(py))).sum(1).mean()))
    mean, std = inception_score(logits, splits=4, seed=4)
    assert mean == pytest.approx(np.mean(want), rel=1e-12)
    assert std == pytest.approx(np.std(want), rel=1e-9)
    assert inception_score(logits, splits=4, seed=4) == (mean, std)
    assert inception_score(logits, splits=4, seed=5) != (mean, std)


def test_inception_score_meter_streams():
    logits = torch.randn(90, 4, generator=torch.Generator().manual_seed(12))
    meter = InceptionScoreMeter()
    for i in range(0, 90, 13):
        meter.update(logits[i : i + 13])
    assert meter.compute(splits=3, seed=1) == inception_score(logits, splits=3, seed=1)


# --- precision / recall ------------------------------------------------------------------------


def numpy_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Brute-force reference: explicit differences, self excluded by index."""

    def dists(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def radii(a):
        d = dists(a, a)
        np.fill_diagonal(d, np.inf)
        return np.sort(d, axis=1)[:, k - 1]

    rr, fr = radii(real), radii(fake)
    precision = np.mean([(dists(f[None], real)[0] <= rr).any() for f in fake])
    recall = np.mean([(dists(r[None], fake)[0] <= fr).any() for r in real])
    return {"precision": float(precision), "recall": float(recall)}


def test_precision_recall_matches_brute_force_and_ignores_block_size():
    rng = np.random.default_rng(13)
    real, fake = rng.normal(size=(80, 3)), rng.normal(size=(70, 3)) * 1.4 + 0.5
    for k in (1, 3, 5):
        want = numpy_precision_recall(real, fake, k)
        assert 0 < want["precision"] < 1 and 0 < want["recall"] < 1
        for batch in (1, 7, 1000):
            assert precision_recall(real, fake, k=k, batch=batch) == want
        assert precision_recall(real, fake, k=k, dtype=torch.float64) == want


def test_precision_recall_identical_and_disjoint():
    rng = np.random.default_rng(14)
    a = rng.normal(size=(100, 8))
    assert precision_recall(a, a) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(a, rng.normal(size=(90, 8)) + 100) == {"precision": 0.0, "recall": 0.0}


# --- FeatureBank -------------------------------------------------------------------------------


def test_feature_bank_uncapped_and_reservoir():
    x = torch.arange(10_000, dtype=torch.float64)[:, None].repeat(1, 2)
    bank = FeatureBank()
    for i in range(0, 500, 37):
        bank.update(x[i : min(i + 37, 500)])
    assert torch.equal(bank.features(), x[:500]) and len(bank) == 500 == bank.seen

    def reservoir(seed: int) -> torch.Tensor:
        bank = FeatureBank(max_samples=1000, seed=seed)
        for i in range(0, len(x), 37):
            bank.update(x[i : i + 37])
        assert len(bank) == 1000 and bank.seen == len(x)
        return bank.features()[:, 0]

    kept = reservoir(0)
    assert len(set(kept.tolist())) == 1000  # distinct rows of the stream
    assert torch.equal(kept, reservoir(0)) and not torch.equal(kept, reservoir(1))
    # uniform over the stream: mean index 4999.5, standard error ~ 2887 / sqrt(1000) ~ 91
    assert abs(float(kept.mean()) - 4999.5) < 400
    assert float((kept >= 5000).double().mean()) == pytest.approx(0.5, abs=0.07)

    # the metric functions take a bank wherever they take features
    a, b = torch.randn(50, 3), torch.randn(60, 3) + 1
    banks = FeatureBank().update(a), FeatureBank().update(b)
    assert frechet_distance(*banks) == frechet_distance(a, b)
    assert kernel_inception_distance(*banks, subset_size=50) == kernel_inception_distance(
        a, b, subset_size=50
    )
    assert precision_recall(*banks) == precision_recall(a, b)


# --- bad input -----------------------------------------------------------------------------------

GOOD = np.random.default_rng(15).normal(size=(20, 4))
NAN = GOOD.copy()
NAN[3, 1] = np.nan
INF = GOOD.copy()
INF[0, 0] = np.inf


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: frechet_distance(GOOD, GOOD[:, :3]), "dimensions differ"),
        (lambda: kernel_inception_distance(GOOD, GOOD[:, :3]), "dimensions differ"),
        (lambda: precision_recall(GOOD, GOOD[:, :3]), "dimensions differ"),
        (lambda: FeatureStats().update(GOOD).update(GOOD[:, :3]), "dimensions differ"),
        (lambda: FeatureStats().update(GOOD).merge(FeatureStats().update(GOOD[:, :2])), "differ"),
        (lambda: FeatureBank().update(GOOD).update(GOOD[:, :3]), "dimensions differ"),
        (lambda: frechet_distance(GOOD[0], GOOD), "2-D"),
        (lambda: frechet_distance(GOOD[None], GOOD), "2-D"),
        (lambda: kernel_inception_distance(GOOD, GOOD.ravel()), "2-D"),
        (lambda: inception_score(torch.zeros(10)), "2-D"),
        (lambda: frechet_distance(NAN, GOOD), "NaN"),
        (lambda: frechet_distance(GOOD, torch.from_numpy(INF)), "NaN or infinite"),
        (lambda: kernel_inception_distance(GOOD, NAN), "NaN"),
        (lambda: precision_recall(INF, GOOD), "NaN"),
        (lambda: inception_score(torch.tensor([[0.0, float("nan")]] * 20)), "NaN"),
        (lambda: FeatureStats().update(GOOD[:1]).cov, "at least 2"),
        (lambda: FeatureStats().mean, "at least 1"),
        (lambda: frechet_distance(GOOD[:1], GOOD), "at least 2"),
        (lambda: FeatureStats.from_moments(np.zeros(3), np.eye(3), n=1), "at least 2"),
        (lambda: kernel_inception_distance(GOOD[:1], GOOD), "at least 2"),
        (lambda: inception_score(torch.zeros(5, 3), splits=10), "splits"),
        (lambda: precision_recall(GOOD[:3], GOOD, k=3), "k < set size"),
        (lambda: FeatureBank().features(), "empty"),
        (lambda: frechet_distance([[1.0, 2.0]], GOOD), "tensor or numpy"),
    ],
)
def test_bad_input_raises_user_error(call, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the KID size warning may precede its error
        with pytest.raises(UserError, match=match):
            call()
