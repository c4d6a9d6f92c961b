"""Where latent codes come from: seeds, image files (inverted) or code files, and their classes.

A `Source` is one kind of item: seeds (the codes `sample` draws), images (inverted into the
space) or code files (`pixelsmith edit invert`'s `.safetensors`). `parse_source` reads a
comma-separated SEED | IMAGE | CODE list and `one_source` the exactly-one-of rule of three
options; both check every file before a model is loaded. `codes_of` turns a source into codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from pixelsmith.edit.latent.invert import invert, load_code, read_targets
from pixelsmith.edit.latent.space import LatentSpace
from pixelsmith.errors import UserError
from pixelsmith.imageio import probe_image

CODE_SUFFIX = ".safetensors"
Log = Callable[[str], None]


def whole_number(text: str | int, what: str, low: int | None = None) -> int:
    """A whole number from option text (at least `low`), or UserError naming `what`."""
    t = str(text).strip()
    if not t.lstrip("-").isdigit():
        raise UserError(f"{what} takes a whole number, got {text!r}")
    value = int(t)
    if low is not None and value < low:
        raise UserError(f"{what} must be at least {low}, got {value}")
    return value


def whole_numbers(text: str, what: str, low: int | None = None) -> list[int]:
    """Comma-separated whole numbers (each at least `low`), or UserError naming `what`."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UserError(f"{what} takes numbers separated by commas, got {text!r}")
    try:
        return [whole_number(p, what, low) for p in parts]
    except UserError:
        raise UserError(f"{what} takes whole numbers separated by commas, got {text!r}") from None


@dataclass(frozen=True)
class Source:
    """Where codes come from: seeds, image files or code files (one kind per source)."""

    kind: str  # "seeds", "images" or "codes"
    items: tuple

    def __len__(self) -> int:
        return len(self.items)


def _files(text: str, what: str, suffixes: tuple[str, ...] | None = None) -> tuple[Path, ...]:
    """Comma-separated files: code files with one of `suffixes` that exist, else images that
    are probed (read far enough to know they are images)."""
    paths = tuple(Path(p.strip()).expanduser() for p in str(text).split(",") if p.strip())
    if not paths:
        raise UserError(f"{what} takes file names separated by commas, got {text!r}")
    for p in paths:
        if suffixes is not None:
            if p.suffix.lower() not in suffixes:
                raise UserError(f"{what}: {p} is not a {' or '.join(suffixes)} code file")
            if not p.is_file():
                raise UserError(f"{what}: code file {p} does not exist")
        else:
            probe_image(p)
    return paths


def parse_source(text: str, what: str) -> Source:
    """One SEED | IMAGE | CODE.safetensors list (comma separated, all of one kind)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UserError(f"{what} takes a seed, an image or a {CODE_SUFFIX} code file")
    if all(p.isdigit() for p in parts):
        return Source("seeds", tuple(int(p) for p in parts))
    if all(p.lower().endswith(CODE_SUFFIX) for p in parts):
        return Source("codes", _files(text, what, (CODE_SUFFIX,)))
    if any(p.isdigit() or p.lower().endswith(CODE_SUFFIX) for p in parts):
        raise UserError(f"{what} mixes seeds, images and code files; give one kind")
    return Source("images", _files(text, what))


def one_source(
    seeds: str | None, images: str | None, codes: str | None, names: tuple[str, str, str]
) -> Source:
    """The one source given of seeds, images and code files (each comma-separated text or
    None), named in errors by `names`; UserError unless exactly one is given."""
    given = [(n, v) for n, v in zip(names, (seeds, images, codes), strict=True) if v is not None]
    if len(given) != 1:
        raise UserError(f"give exactly one of {', '.join(names)}")
    name, value = given[0]
    if value is seeds:
        return Source("seeds", tuple(whole_numbers(value, name, low=0)))
    if value is codes:
        return Source("codes", _files(value, name, (CODE_SUFFIX,)))
    return Source("images", _files(value, name))


def labels_for(space: LatentSpace, label: int | None, n: int) -> Tensor | None:
    """n times one class for a conditional model (`label`, default 0), else None."""
    if not space.classes:
        if label is not None:
            raise UserError("this model is unconditional: leave out --label")
        return None
    return space.check_labels(torch.full((n,), label or 0, dtype=torch.long), n)


def saved_labels(space: LatentSpace, source: Source, label: int | None) -> Tensor | None:
    """A conditional model's classes saved with code files, one per code, when no `label` is
    given (None otherwise, or when a file saved none)."""
    if source.kind != "codes" or label is not None or not space.classes:
        return None
    found = []
    for p in source.items:
        codes, meta = load_code(p, space)
        saved = meta.get("labels")
        if saved is None:
            return None
        found.append(torch.as_tensor(saved, dtype=torch.long).reshape(-1).expand(len(codes)))
    return space.check_labels(torch.cat(found), sum(len(f) for f in found))


def codes_of(
    space: LatentSpace,
    source: Source,
    labels: Tensor | Sequence[int] | None = None,
    steps: int = 200,
    log: Log | None = None,
    start: str = "encoder",
) -> Tensor:
    """The codes of a source: seeds (as sample() draws them), code files (`pixelsmith edit
    invert`'s), or images inverted into the space (`steps` optimisation steps from `start`,
    with `labels`, one per image, for a conditional model)."""
    if source.kind == "seeds":
        return space.from_seeds(list(source.items))
    if source.kind == "codes":
        return torch.cat([load_code(p, space)[0] for p in source.items])
    say = log or (lambda _m: None)
    images, notes = read_targets(space, list(source.items))
    for note in notes:
        say(note)
    say(f"inverting {len(images)} image(s) into {space.kind} ({steps} steps)")
    result = invert(space, images, labels=labels, steps=steps, start=start, progress=log)
    return result.codes.detach().to(space.device)
