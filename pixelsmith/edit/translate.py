"""Images into a CycleGAN's input: the model's channels and size, as its training folders were.

Conversion rule: the pixels (C, H, W) in [0, 1] are taken to 8 bits; grey becomes RGB by
repetition and RGB becomes grey by Pillow's ITU-R 601-2 luma (`convert("L")`); alpha is dropped
without compositing; the image is then resized to the model's height x width as training folders
are (Pillow; LANCZOS when a side shrinks, else BICUBIC; the aspect ratio is not kept).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pixelsmith.data.folder import resize_array
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family


def model_input(pixels: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """One image (C, H, W) in [0, 1], C = 1 or 3, as the (1, C', H', W') input of a model of
    image shape (C', H', W') (see the module doc)."""
    c, h, w = shape
    arr = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if arr.shape[2] != c:
        im = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        arr = np.asarray(im.convert("L" if c == 1 else "RGB")).reshape(*arr.shape[:2], c)
    arr = resize_array(np.ascontiguousarray(arr), (h, w))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255


def check_translator(model: Family) -> Family:
    """The model, or UserError when it does not translate images."""
    if not model.abilities.translates:
        raise UserError(
            f"a {model.name} model does not translate images; pass a run that does (e.g. cyclegan)"
        )
    return model


def translate_image(model: Family, pixels: Tensor, direction: str = "a2b") -> Tensor:
    """One image (C, H, W) in [0, 1] translated by a CycleGAN, at the model's size and channels."""
    if direction not in ("a2b", "b2a"):
        raise UserError(f"direction must be a2b or b2a, got {direction!r}")
    check_translator(model)
    return model.translate(model_input(pixels, model.image_shape), direction)[0].clamp(0, 1)
