"""The LBPH face matcher: codes equal scikit-image's, chi-square by its formula, sane margins."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixelsmith.errors import UserError
from pixelsmith.faces.match import (
    FaceMatcher,
    chi_square,
    lbp_codes,
    lbph,
    n_codes,
    similarity,
    similarity_matrix,
)

skfeature = pytest.importorskip("skimage.feature")


@pytest.mark.parametrize("method", ["nri_uniform", "uniform"])
@pytest.mark.parametrize("radius,points", [(1, 8), (2, 8), (1.5, 8), (3, 12), (1, 4)])
def test_lbp_codes_equal_scikit_image(method: str, radius: float, points: int) -> None:
    rng = np.random.default_rng(points * 10 + int(radius * 2))
    for shape in [(19, 23), (6, 5)]:
        img = rng.integers(0, 256, shape).astype(np.uint8)
        img[:4, :4] = 9  # flat patches: the >= ties
        ref = skfeature.local_binary_pattern(img, points, radius, method)
        got = lbp_codes(torch.from_numpy(img), radius, points, method)
        assert got.dtype == torch.int64
        np.testing.assert_array_equal(got.numpy(), ref)


def test_lbp_codes_equal_scikit_image_on_floats_and_batches() -> None:
    rng = np.random.default_rng(1)
    imgs = rng.random((3, 16, 17))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-image warns on float input
        ref = np.stack([skfeature.local_binary_pattern(i, 8, 2, "nri_uniform") for i in imgs])
    np.testing.assert_array_equal(lbp_codes(torch.from_numpy(imgs)).numpy(), ref)
    assert int(lbp_codes(torch.from_numpy(imgs)).max()) < n_codes()


def test_chi_square_matches_the_direct_formula() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(50)
    b = rng.random(50)
    a[:5] = 0
    b[:3] = 0  # three bins empty in both: they count 0
    direct = sum((x - y) ** 2 / (x + y) for x, y in zip(a, b, strict=True) if x + y > 0)
    got = float(chi_square(torch.from_numpy(a), torch.from_numpy(b)))
    assert got == pytest.approx(direct, rel=1e-12)


def test_descriptor_layout_and_similarity_map() -> None:
    face = torch.rand(3, 40, 33, generator=torch.Generator().manual_seed(0))
    h = lbph(face, grid=7)
    assert h.shape == (7 * 7 * 59,)
    cells = h.view(49, 59).double().sum(1)
    torch.testing.assert_close(cells, torch.ones(49, dtype=torch.float64), atol=1e-6, rtol=0)
    other = lbph(torch.rand(1, 25, 25, generator=torch.Generator().manual_seed(1)))
    expected = 1 - float(chi_square(h.double(), other.double())) / (2 * 49)
    assert similarity(h, other) == pytest.approx(expected, abs=1e-9)
    # disjoint histograms (every cell has a single, different code) give 0
    a = torch.zeros(49, 59)
    b = torch.zeros(49, 59)
    a[:, 0] = 1
    b[:, 1] = 1
    assert similarity(a.flatten(), b.flatten()) == pytest.approx(0.0, abs=1e-12)


def _face(i: int) -> torch.Tensor:
    from skimage.data import lfw_subset

    return torch.from_numpy(lfw_subset()[i]).float()[None]


def test_self_similarity_is_one_and_edits_rank_as_expected() -> None:
    m = FaceMatcher()
    margin = 0.05
    for i in (0, 7, 42):
        face = F.interpolate(_face(i)[None], (64, 64), mode="bilinear")[0].clamp(0, 1)
        assert m.similarity(face, face) == pytest.approx(1.0, abs=1e-6)
        shifted = torch.roll(face, 1, -1)
        shifted[..., 0] = shifted[..., 1]
        blurred = F.avg_pool2d(face[None], 9, 1, 4, count_include_pad=False)[0]
        pixelated = F.interpolate(
            F.interpolate(face[None], (8, 8), mode="area"), (64, 64), mode="nearest"
        )[0]
        s_shift = m.similarity(face, shifted)
        assert s_shift > m.similarity(face, blurred) + margin
        assert s_shift > m.similarity(face, pixelated) + margin
        assert s_shift > m.similarity(face, _face(i + 1)) + margin  # another person


def test_embed_and_matrix_agree_with_pairwise() -> None:
    m = FaceMatcher()
    crops = [_face(i) for i in range(4)]
    crops[1] = torch.rand(3, 31, 20, generator=torch.Generator().manual_seed(3))  # any size, RGB
    e = m.embed(crops)
    assert e.shape == (4, 49 * 59)
    s = m.similarity_matrix(crops)
    assert s.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert float(s[i, j]) == pytest.approx(m.similarity(crops[i], crops[j]), abs=1e-6)
    torch.testing.assert_close(s, s.T)
    assert similarity_matrix(e[:2], e).shape == (2, 4)
    assert float(s.min()) >= 0 and float(s.max()) <= 1 + 1e-6
    # a batch tensor and a list give the same descriptors
    batch = torch.stack([_face(i) for i in range(3)])
    torch.testing.assert_close(m.embed(batch), m.embed(list(batch)))


@pytest.mark.parametrize(
    "bad",
    [
        lambda m: m.similarity(torch.rand(25, 25), torch.rand(1, 25, 25)),
        lambda m: m.embed(torch.rand(2, 25, 25)[None, None]),
        lambda m: m.embed(torch.rand(2, 25, 25)),  # 2 channels
        lambda m: m.embed([]),
        lambda m: m.embed(torch.rand(1, 1, 25)),
        lambda m: similarity(torch.rand(59), torch.rand(58)),
        lambda m: similarity(torch.rand(60), torch.rand(60)),
        lambda m: similarity_matrix(torch.rand(2, 59), torch.rand(2, 118)),
        lambda m: lbp_codes(torch.rand(4, 4), method="ror"),
        lambda m: lbp_codes(torch.rand(2, 2, 4, 4)),
        lambda m: FaceMatcher(grid=0),
        lambda m: FaceMatcher(size=8, grid=7),
    ],
)
def test_bad_arguments_are_one_line_user_errors(bad) -> None:
    with pytest.raises(UserError) as e:
        bad(FaceMatcher())
    assert "\n" not in str(e.value)
