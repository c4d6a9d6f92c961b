"""Seeded, batched sampling with a model's options, and writing the images as grids or folders."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path

from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.imageio import save_image, save_images
from pixelsmith.models.base import Family, SampleConfig

SAMPLE_BATCH = 500


def batch_seed(seed: int, i: int) -> int:
    """The seed of batch i of a run of batches seeded by `seed`."""
    return (seed * 1_000_003 + i) % (2**63 - 1)


def sample_batches(
    model: Family,
    n: int,
    seed: int,
    options: SampleConfig | None = None,
    batch: int = SAMPLE_BATCH,
) -> Iterator[Tensor]:
    """n images in batches; batch i uses `batch_seed(seed, i)`; a conditional model draws its
    classes in turn (0, 1, 2, ... across all n), unless the options name labels."""
    opts = model.sample_options(options)
    labels = model.labels_for(n, opts)
    for i, start in enumerate(range(0, n, batch)):
        m = min(batch, n - start)
        if labels is not None:
            opts = model.sample_options(opts, labels=labels[start : start + m].tolist())
        yield model.sample(m, seed=batch_seed(seed, i), options=opts)


def parse_labels(text: str | None) -> tuple[int, ...] | None:
    """ "3,3,7" -> (3, 3, 7); None stays None."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise UserError(
            f"--labels takes class numbers separated by commas, e.g. 3,3,7; got {text!r}"
        )
    return tuple(int(p) for p in parts)


def parse_options(
    model: Family, items: Sequence[str] = (), labels: str | None = None
) -> SampleConfig:
    """The model's sampling options with `sample.KEY=VALUE` texts (as --set takes them; the
    "sample." prefix may be left out) and `--labels` applied, checked."""
    opts = copy.deepcopy(model.sample_defaults)  # checked once, with the overrides applied
    for item in items:
        if "=" not in item:
            raise UserError(f"option {item!r} is not key=value; write e.g. --set sample.steps=25")
        key, value = item.split("=", 1)
        key = key.strip()
        model.set_sample_option(opts, key.removeprefix("sample."), value, parse=True)
    if labels is not None:
        model.set_sample_option(opts, "labels", model.check_labels(parse_labels(labels)).tolist())
    return model.sample_options(opts)


def write_images(images: Tensor, out: str | Path, nrow: int | None = None) -> list[Path]:
    """Write a batch as one grid (OUT.png) or one PNG per image (a folder)."""
    out = Path(out)
    if out.suffix:
        out.parent.mkdir(parents=True, exist_ok=True)
        return [save_image(images, out, nrow=nrow)]
    return save_images(images, out)


def _check_out(out: Path) -> None:
    if out.suffix and out.suffix.lower() != ".png":
        raise UserError(
            f"output {out} must be a .png file (a grid) or a folder (one PNG per image)"
        )


def sample_to(
    model: Family, n: int, seed: int, out: str | Path, options: SampleConfig | None = None
) -> list[Path]:
    """Sample n images and write a grid (OUT.png; a conditional model's classes in columns) or
    one PNG per image (a folder)."""
    if n <= 0:
        raise UserError(f"-n must be a positive number of images, got {n}")
    out = Path(out)
    _check_out(out)
    images = model.sample(n, seed=seed, options=options)
    return write_images(images, out, nrow=model.classes or None)


def style_mix_to(
    model: Family,
    rows: int,
    cols: int,
    seed: int,
    out: str | Path,
    options: SampleConfig | None = None,
    crossover: int | None = None,
) -> Path:
    """Write a style-mixing grid to OUT.png: rows from seeds seed.., columns from the next ones.

    Row sources give the coarse styles, column sources the fine ones; the first row and column
    show the sources (see the family's `style_mix`).
    """
    if not model.abilities.style_mix:
        raise UserError(
            f"the {model.name} model cannot mix styles; --style-mix needs a style-based model "
            "such as stylegan"
        )
    if rows <= 0 or cols <= 0:
        raise UserError(f"a style-mixing grid needs at least 1 row and 1 column, got {rows},{cols}")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"a style-mixing grid is one image: give -o a .png file, not {out}")
    grid = model.style_mix(
        list(range(seed, seed + rows)),
        list(range(seed + rows, seed + rows + cols)),
        options=options,
        crossover=crossover,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_image(grid, out, nrow=cols + 1)
