from __future__ import annotations

import math

import pytest
import torch

from pixelsmith.errors import UserError
from pixelsmith.imageio import load_image, make_grid, save_image
from pixelsmith.models.gan import upsampling_depth
from pixelsmith.train.batches import Batches
from pixelsmith.train.ema import ema_beta, update_ema


def test_ema_halflife_is_a_half_life():
    beta = ema_beta(batch=50, nimg=10**9, halflife_kimg=2.0, rampup=None)
    assert math.isclose(beta ** (2000 / 50), 0.5, rel_tol=1e-12)
    assert ema_beta(50, 100, 2.0, 0.05) < beta  # rampup shortens the half-life early on
    ema, src = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = ema.weight.detach().clone()
    update_ema(ema, src, 0.75)
    torch.testing.assert_close(ema.weight, 0.75 * before + 0.25 * src.weight)


def test_batches_shard_the_global_batch_and_resume():
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1)
    single = Batches(images, None, 8, seed=3)
    ranks = [Batches(images, None, 8, seed=3, rank=r, world=2) for r in range(2)]
    for _ in range(12):  # crosses epoch boundaries (5 batches per epoch)
        whole = single.next()[0].flatten()
        parts = torch.cat([b.next()[0].flatten() for b in ranks])
        assert torch.equal(whole, parts)
    fresh = Batches(images, None, 8, seed=3)
    epoch_one = [fresh.next()[0] for _ in range(5)]
    seen = torch.cat(epoch_one).flatten().mul(255).round()
    assert len(set(seen.tolist())) == 40  # an epoch visits every image once
    state = single.state()
    nxt = single.next()[0]
    other = Batches(images, None, 8, seed=3)
    other.load_state(state)
    assert torch.equal(other.next()[0], nxt)
    with pytest.raises(UserError, match="divisible"):
        Batches(images, None, 9, seed=0, world=2)
    with pytest.raises(UserError, match="larger than the data"):
        Batches(images, None, 64, seed=0)


@pytest.mark.parametrize("size,k", [((28, 28), 2), ((32, 32), 3), ((64, 48), 4), ((12, 12), 2)])
def test_upsampling_depth(size, k):
    assert upsampling_depth(*size) == k


@pytest.mark.parametrize("size", [(10, 10), (8, 8), (30, 30), (28, 30)])
def test_unsupported_sizes(size):
    with pytest.raises(UserError, match="data.size"):
        upsampling_depth(*size)


def test_image_roundtrip_and_grid(tmp_path):
    x = torch.rand(3, 3, 5, 7)
    q = (x * 255).round() / 255
    save_image(q[0], tmp_path / "a.png")
    torch.testing.assert_close(load_image(tmp_path / "a.png"), q[:1], atol=0, rtol=0)
    g = make_grid(q, nrow=2, pad=1)
    assert g.shape == (3, 2 * 6 + 1, 2 * 8 + 1)
    assert torch.equal(g[:, 1:6, 9:16], q[1])
    with pytest.raises(UserError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_unset_threads_follow_omp_num_threads_for_one_process(monkeypatch):
    from pixelsmith.train.loop import default_threads

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert default_threads(1) == 8 and default_threads(2) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_threads(1) == 1
    assert default_threads(4) == 2  # torchrun's processes: the cores shared, not its setting
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert default_threads(1) == 8
