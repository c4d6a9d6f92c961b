"""The latent edits from sources to images: an interpolation's frames, a grid of codes moved
along directions, and style mixes (what `pixelsmith edit interpolate|direction|mix` run).

Each takes a `LatentSpace` and `Source`s (seeds, images to invert, code files), checks what it
can before any image is inverted or any direction found, and returns tensors with what a caller
needs to lay them out and report them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from pixelsmith.edit.latent.directions import (
    Direction,
    Labeller,
    apply_in,
    base_space,
    check_method,
    label_direction,
    label_images,
    pca_directions,
    shipped_labeller,
)
from pixelsmith.edit.latent.interpolate import tour
from pixelsmith.edit.latent.mixing import check_crossover, mix, mix_grid, wplus_space
from pixelsmith.edit.latent.sources import Log, Source, codes_of, labels_for, saved_labels
from pixelsmith.edit.latent.space import LatentSpace
from pixelsmith.errors import UserError


@dataclass
class Interpolation:
    """The frames of a path through a source's codes, `steps` per leg, each joint once."""

    codes: Tensor  # (T, *space.shape)
    images: Tensor  # (T, C, H, W) in [0, 1], CPU
    legs: int
    labels: Tensor | None = None  # the one class of every frame, for a conditional model


def interpolation(
    space: LatentSpace,
    source: Source,
    steps: int,
    label: int | None = None,
    *,
    invert_steps: int = 200,
    start: str = "encoder",
    log: Log | None = None,
) -> Interpolation:
    """Interpolate through the codes of `source` (at least two) by the space's rule.

    A conditional model keeps one class along the path: `label`, else the class saved with
    code files (they must agree), else 0.
    """
    if len(source) < 2:
        raise UserError(f"an interpolation needs at least two end points, got {len(source)}")
    labels = labels_for(space, label, 1)
    saved = saved_labels(space, source, label)
    if saved is not None:  # the classes the codes were inverted with
        if len(set(saved.tolist())) > 1:
            raise UserError(
                f"the code files hold classes {sorted(set(saved.tolist()))}; a path keeps one "
                "class, so pass --label K"
            )
        labels = saved[:1]
    per_code = None if labels is None else labels.expand(len(source))
    codes = codes_of(space, source, per_code, invert_steps, log, start)
    path = tour(space, codes, steps)
    frames = None if labels is None else labels.expand(len(path))
    return Interpolation(path, space.images(path, frames), len(codes) - 1, frames)


@dataclass
class DirectionGrid:
    """Each source code moved along each direction by each strength: one row per (direction,
    code), one column per strength."""

    images: Tensor  # (rows * len(strengths), C, H, W) in [0, 1], row-major
    rows: int
    strengths: list[float]
    directions: list[Direction]
    # Label directions: each class's mean probability per strength, the target's first.
    probabilities: list[tuple[str, list[float]]] = field(default_factory=list)


def direction_grid(
    space: LatentSpace,
    source: Source,
    strengths: Sequence[float],
    *,
    classes: tuple[str | int, str | int] | None = None,
    components: Sequence[int] = (),
    method: str = "linear",
    samples: int = 2000,
    label: int | None = None,
    invert_steps: int = 200,
    start: str = "encoder",
    labeller: Labeller | None = None,
    log: Log | None = None,
) -> DirectionGrid:
    """Move the source's codes along the label direction `classes` = (from, to) (found with
    `method` by `labeller`, default the shipped classifier of the model's data), or along the
    principal `components` (GANSpace); directions are found from `samples` prior codes and
    cached."""
    say = log or (lambda _m: None)
    strengths = [float(s) for s in strengths]
    if classes is not None and components:
        raise UserError("give --from/--to (a label direction) or --pca K, not both")
    if classes is None and not components:
        raise UserError("name a direction: --from CLASS --to CLASS, or --pca K")
    check_method(method)
    if classes is not None:
        if space.classes:
            raise UserError(
                "a conditional model takes its class as an input: draw another class with "
                "--labels (pixelsmith sample) instead of moving along a label direction"
            )
        labeller = labeller or shipped_labeller(space)
        a, b = labeller.class_id(classes[0]), labeller.class_id(classes[1])
        if a == b:
            raise UserError(f"--from and --to name the same class ({labeller.classes[a]})")
    else:
        dim = base_space(space).dim
        if max(components) >= dim:
            raise UserError(
                f"--pca takes components 0-{dim - 1} (the code width), got {max(components)}"
            )
    labels = labels_for(space, label, len(source))
    saved = saved_labels(space, source, label)
    if saved is not None:  # the classes the codes were inverted with
        labels = saved
    codes = codes_of(space, source, labels, invert_steps, log, start)
    if classes is not None:
        names = f"{labeller.classes[a]} -> {labeller.classes[b]}"
        say(f"finding the {method} direction {names} ({samples} samples; cached)")
        found = [label_direction(space, a, b, method, samples, labeller=labeller)]
    else:
        say(f"finding {max(components) + 1} principal directions ({samples} samples; cached)")
        every = pca_directions(space, max(components) + 1, samples)
        found = [every[k] for k in components]
    rows = []
    for d in found:
        for i in range(len(codes)):
            moved = torch.cat([apply_in(space, codes[i : i + 1], d, s) for s in strengths])
            lab = None if labels is None else labels[i : i + 1].expand(len(strengths))
            rows.append(space.images(moved, lab))
    images = torch.cat(rows)
    grid = DirectionGrid(images, len(rows), strengths, found)
    if classes is not None:
        probs = label_images(labeller.classify, images).reshape(len(rows), len(strengths), -1)
        grid.probabilities = [(labeller.classes[c], probs[..., c].mean(0).tolist()) for c in (b, a)]
    return grid


@dataclass
class StyleMix:
    """Style mixes of coarse and fine codes: one image, or the grid with its sources."""

    images: Tensor  # (1, C, H, W), or (R + 1) * (C + 1) cells row-major (`nrow` per row)
    nrow: int
    crossover: int
    grid: bool
    coarse: int  # how many coarse codes (grid rows) and fine codes (grid columns)
    fine: int


def mix_sources(
    space: LatentSpace,
    coarse: Source,
    fine: Source,
    crossover: int | None = None,
    grid: bool = False,
    *,
    invert_steps: int = 200,
    start: str = "encoder",
    log: Log | None = None,
) -> StyleMix:
    """Layers [0, crossover) of the coarse codes with the rest of the fine ones, in the model's
    space whose codes mix (W+): one image for one code of each unless `grid`, else
    `mix_grid`'s grid with the sources."""
    space = wplus_space(space)
    crossover = check_crossover(crossover, space.layers)
    c = codes_of(space, coarse, None, invert_steps, log, start)
    f = codes_of(space, fine, None, invert_steps, log, start)
    if len(c) == 1 and len(f) == 1 and not grid:
        return StyleMix(space.images(mix(space, c, f, crossover)), 1, crossover, False, 1, 1)
    cells = mix_grid(space, c, f, crossover)
    return StyleMix(cells, len(f) + 1, crossover, True, len(c), len(f))
