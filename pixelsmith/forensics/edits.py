"""Synthetic edits of a photo with the mask of what changed: the localiser's training and test data.

An image is a float (3, H, W) tensor in [0, 1]; the mask is (1, H, W), 1 where pixels were
replaced. The kinds: the zoo's learned inpainter (`inpaint`), the classical fills `harmonic` and
`telea`, `copy-move` (the same photo, shifted, pasted under the mask) and `splice` (another photo
pasted under the mask); `ns` (OpenCV's Navier-Stokes inpainting) and `biharmonic`
(scikit-image's) are kept out of training, to test fills the localiser never saw. Every edit comes
back on 8-bit levels, as a saved image would; `save_jpeg` then stores it like a camera or a
website does. Masks are free-form strokes or boxes covering `COVERAGE` of the image.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pixelsmith.data.degrade import jpeg, masks_with_coverage
from pixelsmith.edit import classical, ops
from pixelsmith.errors import UserError
from pixelsmith.utils.rng import BatchRandom

TRAINED_KINDS: tuple[str, ...] = ("inpaint", "harmonic", "telea", "copy-move", "splice")
UNSEEN_KINDS: tuple[str, ...] = ("ns", "biharmonic")
KINDS: tuple[str, ...] = ("none", *TRAINED_KINDS, *UNSEEN_KINDS)
COVERAGE: tuple[float, float] = (0.03, 0.25)


def quantise(x: Tensor) -> Tensor:
    """x rounded to 8-bit levels in [0, 1]."""
    return (x.clamp(0, 1) * 255).round() / 255


def save_jpeg(x: Tensor, quality: int) -> Tensor:
    """x (3, H, W) after a JPEG round trip at `quality` (4:2:0, Pillow)."""
    return jpeg(x[None], quality)[0]


def random_mask(h: int, w: int, rng: np.random.Generator) -> Tensor:
    """A (1, H, W) free-form or box mask covering COVERAGE of the image."""
    br = BatchRandom(int(rng.integers(2**31)))
    return masks_with_coverage(1, h, w, br, coverage=COVERAGE, strict=False)[0]


def _cv2_fill(x: Tensor, mask: Tensor, flag_name: str, radius: int = 3) -> Tensor:
    import cv2

    img = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    m = (mask[0] > 0.5).to(torch.uint8).numpy()
    out = cv2.inpaint(img, m, radius, getattr(cv2, flag_name))
    return torch.from_numpy(out).permute(2, 0, 1).float() / 255


def _biharmonic(x: Tensor, mask: Tensor) -> Tensor:
    from skimage.restoration import inpaint_biharmonic

    img = x.permute(1, 2, 0).double().numpy()
    out = inpaint_biharmonic(img, mask[0].numpy() > 0.5, channel_axis=-1)
    return torch.from_numpy(out).permute(2, 0, 1).float()


def _fit(donor: Tensor, h: int, w: int, rng: np.random.Generator) -> Tensor:
    """A random h x w crop of the donor photo (resized up first when it is smaller)."""
    dh, dw = donor.shape[-2:]
    if dh < h or dw < w:
        f = max(h / dh, w / dw)
        size = (max(h, round(dh * f)), max(w, round(dw * f)))
        donor = torch.nn.functional.interpolate(
            donor[None], size=size, mode="bilinear", align_corners=False
        )[0]
        dh, dw = donor.shape[-2:]
    y, x = int(rng.integers(0, dh - h + 1)), int(rng.integers(0, dw - w + 1))
    return donor[:, y : y + h, x : x + w]


def _fill(x: Tensor, mask: Tensor, kind: str) -> Tensor:
    holed = x * (1 - mask)
    if kind == "inpaint":
        return ops.inpaint(holed, mask)
    if kind == "harmonic":
        return classical.harmonic_fill(holed, mask)
    if kind == "telea":
        return classical.telea_fill(holed, mask)
    if kind == "ns":
        return _cv2_fill(holed, mask, "INPAINT_NS")
    return _biharmonic(holed, mask)


def make_edit(
    x: Tensor,
    kind: str,
    rng: np.random.Generator,
    donor: Tensor | None = None,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(edited, mask): x (3, H, W) with a random region (or `mask`) replaced by `kind`, on 8-bit
    levels; `splice` pastes from `donor` (another photo), kind `none` changes nothing."""
    if kind not in KINDS:
        raise UserError(f"unknown edit kind {kind!r}; use one of {', '.join(KINDS)}")
    if x.dim() != 3 or x.shape[0] != 3:
        raise UserError(f"make_edit needs an RGB (3, H, W) image, got shape {tuple(x.shape)}")
    x = quantise(x.float())
    h, w = x.shape[-2:]
    if kind == "none":
        return x, torch.zeros(1, h, w)
    m = random_mask(h, w, rng) if mask is None else (mask > 0.5).float().reshape(1, h, w)
    if kind == "copy-move":
        dy = int(rng.integers(h // 8, h - h // 8 + 1)) * int(rng.choice([-1, 1]))
        dx = int(rng.integers(w // 8, w - w // 8 + 1)) * int(rng.choice([-1, 1]))
        source = torch.roll(x, shifts=(dy, dx), dims=(1, 2))
    elif kind == "splice":
        if donor is None:
            raise UserError("a splice edit needs a donor photo to paste from (donor=...)")
        source = _fit(quantise(donor.float()), h, w, rng)
    else:
        source = _fill(x, m, kind)
    edited = x * (1 - m) + quantise(source) * m
    return edited, m
