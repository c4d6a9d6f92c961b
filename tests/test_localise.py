"""The edited-region localiser: synthetic edits and their masks, the map's shape for any size,
the shipped localiser against a fill it should find, and the refusal of a tiny image."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from sklearn.metrics import roc_auc_score

from pixelsmith.errors import UserError
from pixelsmith.forensics.edits import KINDS, make_edit
from pixelsmith.forensics.localise import LocaliserNet, localise, localiser_map


def _photo(name: str = "chelsea", size: int = 96) -> torch.Tensor:
    arr = getattr(skimage.data, name)()[:size, 60 : 60 + size]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


@pytest.mark.parametrize(
    "kind",
    [pytest.param(k, marks=pytest.mark.zoo) if k == "inpaint" else k for k in KINDS],
)
def test_an_edit_changes_only_the_masked_pixels(kind):
    x = _photo()
    donor = _photo("coffee")
    edited, mask = make_edit(x, kind, np.random.default_rng(3), donor=donor)
    assert edited.shape == x.shape and mask.shape == (1, 96, 96)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(edited * 255, (edited * 255).round(), atol=1e-3)  # 8-bit levels
    keep = (1 - mask).bool().expand(3, -1, -1)
    assert (edited - x)[keep].abs().max() <= 0.5 / 255 + 1e-6
    if kind == "none":
        assert mask.sum() == 0
    else:
        assert 0.01 <= mask.mean() <= 0.4
        assert (edited - x)[~keep].abs().mean() > 0.005


def test_edits_refuse_an_unknown_kind_and_a_splice_without_a_donor():
    rng = np.random.default_rng(0)
    with pytest.raises(UserError, match="unknown edit kind"):
        make_edit(_photo(), "smudge", rng)
    with pytest.raises(UserError, match="donor"):
        make_edit(_photo(), "splice", rng)


@pytest.mark.parametrize("shape", [(3, 37, 53), (1, 40, 33), (3, 64, 64)])
def test_a_tiny_localiser_maps_every_pixel_of_any_size(shape):
    torch.manual_seed(0)
    net = LocaliserNet(width=4).eval()
    p = localise(torch.rand(shape), net)
    assert p.shape == shape[1:]
    assert float(p.min()) >= 0 and float(p.max()) <= 1


def test_tiles_cover_a_large_photo_and_agree_with_one_pass_inside():
    torch.manual_seed(0)
    net = LocaliserNet(width=4).eval()
    x = torch.rand(3, 100, 150)
    whole = localiser_map(net, x)
    tiled = localiser_map(net, x, tile=64, margin=16)
    assert tiled.shape == whole.shape == (100, 150)
    # a tile's edge is 16 px from its answer: far from exact, but close on average
    assert (tiled - whole).abs().mean() < 0.05


def test_a_too_small_image_is_refused_in_one_sentence():
    with pytest.raises(UserError, match="at least 32 pixels"):
        localise(torch.rand(3, 20, 64), LocaliserNet(width=4))


@pytest.mark.zoo
def test_the_shipped_localiser_finds_a_big_harmonic_fill():
    x = _photo("chelsea", 256)
    mask = torch.zeros(1, 256, 256)
    mask[:, 70:170, 60:180] = 1
    edited, mask = make_edit(x, "harmonic", np.random.default_rng(0), mask=mask)
    p = localise(edited)
    auc = roc_auc_score(mask[0].numpy().ravel(), p.numpy().ravel())
    assert auc > 0.75, auc
