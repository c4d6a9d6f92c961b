"""The one BT.601 luma every room uses agrees with Pillow's and OpenCV's grey conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pixelsmith.utils.colour import luma


def _rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)


def test_luma_matches_pillow_and_opencv_to_a_rounding_step():
    arr = _rgb()
    x = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    ours = (luma(x)[0] * 255).numpy()
    pillow = np.asarray(Image.fromarray(arr).convert("L")).astype(float)
    assert np.abs(ours - pillow).max() <= 0.51  # Pillow rounds its fixed-point result
    cv2 = pytest.importorskip("cv2")
    opencv = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY).astype(float)
    assert np.abs(ours - opencv).max() <= 0.51


def test_luma_keeps_grey_ignores_alpha_and_takes_batches():
    grey = torch.rand(2, 1, 5, 5)
    assert luma(grey) is grey
    rgb = torch.rand(2, 3, 5, 5)
    rgba = torch.cat([rgb, torch.rand(2, 1, 5, 5)], 1)
    assert torch.equal(luma(rgba), luma(rgb)) and luma(rgb).shape == (2, 1, 5, 5)
    assert torch.equal(luma(rgb[0]), luma(rgb)[0])
    white = torch.ones(3, 2, 2, dtype=torch.float64)
    assert torch.allclose(luma(white), torch.ones(1, 2, 2, dtype=torch.float64))
