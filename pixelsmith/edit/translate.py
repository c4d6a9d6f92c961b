"""Translate image files between a CycleGAN's two domains: one file, or a folder of them.

Conversion rule: each file is read with `pixelsmith.imageio.load_image` (the guarded reader: size
cap from the header, a bad file is one UserError naming it) in the model's channels (Pillow's
convert: RGB -> gray is ITU-R 601-2 luma, gray -> RGB repeats it, alpha is dropped without
compositing), then resized to the model's height x width as training folders are
(Pillow; LANCZOS when a side shrinks, else BICUBIC; the aspect ratio is not kept). Outputs are
PNGs at the model's size: OUT.png for a single image, else one PNG per input under the OUT
folder, at the input's relative path with a .png suffix. Every input is read before anything is
written, so a bad file stops the command with nothing half done.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pixelsmith.data.folder import resize_array
from pixelsmith.edit import files
from pixelsmith.errors import UserError
from pixelsmith.generate import load_model
from pixelsmith.imageio import load_image, save_image
from pixelsmith.models.base import Family

BATCH = 64


def read_for_model(
    path: Path, shape: tuple[int, int, int], data: bytes | None = None
) -> torch.Tensor:
    """One image file (or its bytes, `data`) as a (1, C, H, W) float tensor in [0, 1] in the
    model's channels and size."""
    c, h, w = shape
    x = load_image(path, channels=c, data=data)
    if tuple(x.shape[-2:]) != (h, w):
        arr = (x[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        arr = resize_array(arr, (h, w))
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255
    return x


def plan(src: Path, out: Path) -> list[tuple[Path, Path]]:
    """(input file, output PNG) pairs for an image or a folder of images."""
    if out.suffix and out.suffix.lower() != ".png" and not out.is_dir():
        raise UserError(f"output {out} must be a .png file or a folder")
    pairs = [(f, t.with_suffix(".png")) for f, t in files.plan(src, out)]
    seen: dict[Path, Path] = {}
    for f, t in pairs:
        if t in seen:
            raise UserError(f"{seen[t]} and {f} would both be written to {t}; rename one of them")
        seen[t] = f
    return pairs


def translate_files(
    model: Family | str | Path,
    src: str | Path,
    out: str | Path,
    direction: str = "a2b",
    device: str = "cpu",
) -> list[Path]:
    """Translate an image file or a folder of them with a CycleGAN run; returns the PNGs written."""
    if direction not in ("a2b", "b2a"):
        raise UserError(f"direction must be a2b or b2a, got {direction!r}")
    pairs = plan(Path(src), Path(out))
    inputs = {f.resolve() for f, _ in pairs}
    clash = next((t for _, t in pairs if t.resolve() in inputs), None)
    if clash is not None:
        raise UserError(f"writing {clash} would overwrite an input; choose another output")
    if not isinstance(model, Family):
        model = load_model(model, device=device)
    if not model.abilities.translates:
        raise UserError(
            f"a {model.name} model does not translate images; pass a run that does (e.g. cyclegan)"
        )
    images = torch.cat([read_for_model(f, model.image_shape) for f, _ in pairs])
    written = []
    for i in range(0, len(pairs), BATCH):
        result = model.translate(images[i : i + BATCH], direction)
        for (_, target), image in zip(pairs[i : i + BATCH], result, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            written.append(save_image(image, target))
    return written
