"""Self-conditioning (model.clusters): k-means against SciPy and the blobs' own means, the normal
cuts against SciPy's quantiles, and a GAN that trains on clusters but stays unconditional."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY, make_gan
from scipy.cluster.vq import kmeans2
from scipy.stats import norm

from pixelsmith.errors import UserError
from pixelsmith.models import clusters as km
from pixelsmith.models.base import Batch
from pixelsmith.models.gan import GANConfig
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.utils.rng import BatchRandom


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """400 points in 5-d around four centres 10 apart, 0.3 wide, and their blob of each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (4, 5))
    which = rng.integers(0, 4, 400)
    return centres[which] + rng.normal(0, 0.3, (400, 5)), which


def _sorted(c: np.ndarray) -> np.ndarray:
    return c[np.lexsort(c.T[::-1])]


def test_kmeans_finds_the_blob_means_as_scipy_does():
    x, which = _blobs()
    ours = _sorted(km.kmeans(torch.from_numpy(x), 4, seed=0).double().numpy())
    means = _sorted(np.stack([x[which == j].mean(0) for j in range(4)]))
    np.testing.assert_allclose(ours, means, atol=1e-5)  # float32 centroids
    theirs, _ = kmeans2(x, 4, minit="++", seed=np.random.default_rng(1))
    np.testing.assert_allclose(ours, _sorted(theirs), atol=1e-5)
    # Every point goes to the centroid of its own blob.
    a = km.assign(torch.from_numpy(x).float(), torch.from_numpy(ours).float()).numpy()
    assert all(len(set(a[which == j])) == 1 for j in range(4))
    with pytest.raises(ValueError, match="at least 5 images"):
        km.kmeans(torch.zeros(3, 2), 5, seed=0)


def test_fit_shares_are_the_nearest_centroid_counts_of_all_images():
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(300, 1, 40, 40, generator=g) * 255).to(torch.uint8)
    images[:100] //= 4  # three brightness groups: clusters of unequal size
    images[100:150] = 255 - images[100:150] // 4
    centroids, prior = km.fit(images, 3, seed=0)
    view = km.cluster_view(images.float() / 255)
    assert view.shape == (300, 20 * 20)  # 40 pixels a side averaged down to 20
    brute = ((view[:, None].double() - centroids[None].double()) ** 2).sum(-1).argmin(1)
    np.testing.assert_allclose(prior.numpy(), np.bincount(brute.numpy(), minlength=3) / 300)
    assert sorted((prior * 300).round().tolist()) == [50, 100, 150]


def test_normal_cuts_are_the_normal_quantiles_of_the_shares():
    prior = torch.tensor([0.1, 0.25, 0.05, 0.6])
    cuts = km.normal_cuts(prior)
    np.testing.assert_allclose(cuts.numpy(), norm.ppf(np.cumsum(prior.numpy())[:-1]), atol=1e-6)
    z0 = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    shares = torch.bincount(km.cluster_of(z0, cuts), minlength=4) / len(z0)
    # Binomial standard error at this n is at most 0.0011: 0.005 is over four of them.
    np.testing.assert_allclose(shares.numpy(), prior.numpy(), atol=0.005)


def test_the_middle_z0_of_each_cluster_lies_in_it():
    prior = torch.tensor([0.1, 0.25, 0.05, 0.6])
    k = torch.arange(4)
    z0 = km.middle_z0(k, prior)
    mid = np.cumsum(prior.numpy()) - prior.numpy() / 2
    np.testing.assert_allclose(z0.numpy(), norm.ppf(mid), atol=1e-6)
    assert torch.equal(km.cluster_of(z0, km.normal_cuts(prior)), k)


def _clustered(k: int = 3):
    fam = make_gan((1, 16, 16), clusters=k, class_norm=True)
    fam.add_ema_copies()
    g = torch.Generator().manual_seed(1)
    images = (torch.rand(60, 1, 16, 16, generator=g) * 255).to(torch.uint8)
    images[:30] //= 3
    fam.fit_data(images, seed=0)
    return fam, images


def test_a_clustered_gan_fits_every_copy_and_labels_real_images_by_nearest_centroid():
    fam, images = _clustered()
    G, G_ema, D = (fam.networks[n] for n in ("G", "G_ema", "D"))
    assert float(G.prior.sum()) == pytest.approx(1.0) and torch.equal(G.cuts, G_ema.cuts)
    assert D.centroids.abs().sum() > 0
    x = images.float() / 255
    batch = fam.prepare_batch(Batch(x, torch.zeros(60, dtype=torch.long)), BatchRandom(0))
    brute = ((x.flatten(1)[:, None] - D.centroids[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(batch.labels, brute)  # the data's own labels are replaced
    # Centroids an --init brought are kept, and their shares counted on the new images.
    before = D.centroids.clone()
    darker = images // 3
    fam.fit_data(darker, seed=5)
    assert torch.equal(D.centroids, before)
    for net in (G, G_ema):
        torch.testing.assert_close(net.prior, km.shares(darker, before))
        torch.testing.assert_close(net.cuts, km.normal_cuts(net.prior))
    assert not torch.allclose(G.prior, km.shares(images, before))
    with pytest.raises(UserError, match="at least 4 training images"):
        make_gan((1, 16, 16), clusters=4).fit_data(images[:3], seed=0)


def test_pruning_a_clustered_gan_keeps_its_clusters():
    from pixelsmith.deploy.compress import structured_prune

    fam, _ = _clustered()
    thin = structured_prune(fam.eval(), 0.5)
    for name in ("G", "G_ema"):
        assert torch.equal(thin.networks[name].cuts, fam.networks[name].cuts)
        assert torch.equal(thin.networks[name].prior, fam.networks[name].prior)
    assert torch.equal(thin.networks["D"].centroids, fam.networks["D"].centroids)
    assert thin.sample(4, seed=0).shape == (4, 1, 16, 16)


def test_z0_picks_the_cluster_and_nothing_else():
    fam, _ = _clustered()
    G = fam.networks["G_ema"].eval()
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(2))
    labels = km.cluster_of(z[:, 0], G.cuts)
    assert len(set(labels.tolist())) == 3
    with torch.no_grad():
        torch.testing.assert_close(G(z), G(z, labels), rtol=0, atol=0)
        # Another z0 in the same cluster draws the same image: z0 only chooses the cluster.
        lo = torch.cat([torch.tensor([-9.0]), G.cuts])
        z2 = z.clone()
        z2[:, 0] = lo[labels] + 1e-3
        torch.testing.assert_close(G(z2), G(z), rtol=0, atol=0)
    assert fam.classes == 0  # unconditional to its users
    with pytest.raises(UserError, match="unconditional"):
        fam.sample(2, seed=0, labels=[1])
    assert fam.sample(4, seed=3).shape == (4, 1, 16, 16)


def test_inversion_starts_in_the_cluster_d_puts_the_image_in():
    from pixelsmith.edit.latent.invert import invert
    from pixelsmith.edit.latent.space import latent_space

    fam, images = _clustered()
    fam.eval()
    x = images[:8].float() / 255
    want = fam.networks["D"].cluster_of(x)
    res = invert(latent_space(fam), x, steps=2, start="random", perceptual="none", seed=4)
    assert torch.equal(km.cluster_of(res.codes[:, 0], fam.networks["G_ema"].cuts), want)
    # Without the hook a random start keeps whatever cluster it drew: some differ here.
    z = latent_space(fam).random(8, seed=4)
    assert not torch.equal(km.cluster_of(z[:, 0], fam.networks["G_ema"].cuts), want)


def test_settings_that_cannot_go_with_clusters_are_refused():
    with pytest.raises(UserError, match="at least 2"):
        GANConfig(clusters=1)
    with pytest.raises(UserError, match="conditional model has its classes"):
        GANConfig(clusters=4, conditional=True)
    with pytest.raises(UserError, match="model.clusters=0 to train privately"):
        make_gan((1, 16, 16), clusters=3).check_private()


def _state(run) -> dict[str, torch.Tensor]:
    t, _ = ckf.load_checkpoint(ckf.resolve_checkpoint(run))
    return {k: v for k, v in t.items() if k.startswith(("net/", "opt/", "rng/"))}


def test_a_clustered_run_resumes_bit_for_bit_with_its_clusters(tmp_path):
    def cfg(steps: int):
        sets = [*TINY, "model.clusters=4", "model.class_norm=true", "model.mode_seeking=0.25"]
        return build_config("dcgan", overrides=[*sets, f"train.steps={steps}"])

    full = train(cfg(6), tmp_path / "a", progress=False)
    half = train(cfg(3), tmp_path / "b", progress=False)
    resumed = train(cfg(6), resume=half, progress=False)
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys() and "net/D/centroids" in a and "net/G_ema/cuts" in a
    # The run fitted its clusters before the first step, and the resume kept them.
    assert a["net/D/centroids"].abs().sum() > 0 and float(a["net/G_ema/prior"].sum()) == 1.0
    assert torch.equal(a["net/D/centroids"], _state(half)["net/D/centroids"])
    for k in a:
        assert torch.equal(a[k], b[k]), k
