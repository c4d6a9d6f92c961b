"""An operation on images, declared once: what the command line, Python and the service offer.

A declaration says the operation's name (`pixelsmith edit NAME`, `"operation": NAME` over HTTP,
`jobs.apply(NAME, ...)` in Python), a title for people, its typed options (`jobs.options`), what it
needs besides the image (a mask, a model that translates, faces), the size of what it makes, the
checks that can run before any image is read, and `apply`, which edits one `Photo`. The doors
(`pixelsmith.cli.edit`, `pixelsmith.serve`) and the file runner (`jobs.files`) are generated from
the declarations, so an operation is added by declaring it once (see `jobs.catalog`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import Tensor

from pixelsmith.edit.photo import Photo
from pixelsmith.errors import UserError
from pixelsmith.jobs.options import Option, parse_all
from pixelsmith.models.base import Family

NEEDS = ("mask", "translator", "faces")


@dataclass
class Context:
    """What an operation may use besides the photo and its options, and what it reports."""

    mask: Tensor | None = None  # (1, 1, H, W), 1 = the pixels to fill
    model: Family | None = None  # the model the operation needs (a translator)
    given: Any = None  # what `prepare` resolved for this file (e.g. its boxes)
    tiles: Callable[[int, int], None] | None = None  # (done, total) per tile; may raise to stop
    report: dict[str, Any] = field(default_factory=dict)  # what it says of this image

    def tick(self) -> None:
        """A point where long work may be stopped (the service's timeout)."""
        if self.tiles is not None:
            self.tiles(0, 0)


def _same_size(h: int, w: int, _options: dict[str, Any], _ctx: Context) -> tuple[int, int]:
    return h, w


@dataclass(frozen=True)
class Operation:
    """One operation on images (see the module doc)."""

    name: str
    title: str
    about: str
    apply: Callable[[Photo, dict[str, Any], Context], Photo]
    options: tuple[Option, ...] = ()
    # What it needs besides the image: "mask", "translator" (a model), "faces" (detection).
    needs: tuple[str, ...] = ()
    # (height, width) of the result for an input of that size.
    size: Callable[[int, int, dict[str, Any], Context], tuple[int, int]] = _same_size
    # Whether the result keeps the input's alpha (else it has none).
    keeps_alpha: bool = True
    # Refusals that need no image: models, option combinations. Runs before any file is read.
    check: Callable[[dict[str, Any], Context], None] | None = None
    # Per-file inputs resolved before any file is written, e.g. boxes read from a file:
    # (options, [(input file, its path relative to the input)]) -> {file: Context.given}.
    prepare: Callable[[dict[str, Any], list[tuple[Path, Path]]], dict[Path, Any]] | None = None
    # Other names that stand for this operation with some options set (OpenAI's `model`).
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where else the command line offers it, besides `pixelsmith edit NAME`.
    alias: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        bad = [n for n in self.needs if n not in NEEDS]
        if bad:
            raise ValueError(f"{self.name}: unknown need {bad[0]!r}; needs are {NEEDS}")

    def remote_options(self) -> tuple[Option, ...]:
        """The options the service offers (local files left out)."""
        return tuple(o for o in self.options if not o.local)

    def parse(self, given: dict[str, Any], remote: bool = False) -> dict[str, Any]:
        """Every option checked and typed, defaults filled in (see options.parse_all)."""
        return parse_all(self.options, given, self.name, remote)

    def card(self) -> dict[str, Any]:
        """What GET /v1/edits says of it, and what the web page builds its form from."""
        return {
            "id": self.name,
            "title": self.title,
            "about": self.about,
            "options": [o.card() for o in self.remote_options()],
            "needs_mask": "mask" in self.needs,
            "variants": sorted(self.variants),
        }

    def run(self, photo: Photo, options: dict[str, Any], ctx: Context | None = None) -> Photo:
        """apply on one photo with parsed options, after the checks the needs call for."""
        ctx = ctx or Context()
        if "mask" in self.needs and ctx.mask is None:  # its size is the operation's to check
            raise UserError(f"{self.name} needs a mask (white, or transparent, = to fill)")
        if "translator" in self.needs and ctx.model is None:
            raise UserError(f"{self.name} needs a model to translate with")
        out = self.apply(photo, options, ctx)
        return out if self.keeps_alpha else replace(out, alpha=None)
