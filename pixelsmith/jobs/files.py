"""An operation on files: `pixelsmith edit NAME IN -o OUT`, and the same from Python.

Everything that can be refused is refused before the first file is written (jobs.plan's rules,
then each operation's own): the options, the operation's models, every input's header, the size
of each result against the pixel cap, the mask against each image, alpha against each output's
format, the operation's per-file inputs (boxes). Then each file is read, edited and written
atomically in its own mode (`pixelsmith.edit.photo`), with a progress line per file and per tile
on large images. A file whose header read but whose data does not is skipped and counted with
the unreadable ones.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pixelsmith import imageio
from pixelsmith.edit.ops import check_mask_size
from pixelsmith.edit.photo import Photo, mask_of, read_photo, write_photo
from pixelsmith.errors import UserError, warn
from pixelsmith.generate import load_model
from pixelsmith.jobs.catalog import resolve
from pixelsmith.jobs.operation import Context, Operation
from pixelsmith.jobs.plan import Item, Plan, check_alpha, check_cap, plan, short_reason
from pixelsmith.jobs.stamp import (
    Credentials,
    Stamp,
    edit_model,
    open_stamp,
    parent_of,
    signable,
    stamp_file,
    unmarked,
)
from pixelsmith.models.base import Family
from pixelsmith.provenance.keys import WatermarkKey

Log = Callable[[str], None]


def stderr(line: str) -> None:
    """A progress line on stderr."""
    print(line, file=sys.stderr, flush=True)


class Progress:
    """A line per file, and tile progress on large images (at most every 2 s)."""

    def __init__(self, total: int, log: Log | None):
        self.total, self.log, self.last = total, log, 0.0

    def file(self, i: int, item: Item) -> None:
        if self.log:
            self.log(f"[{i}/{self.total}] {item.source}")

    def tiles(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.log and total > 1 and (now - self.last > 2 or done == total):
            self.last = now
            self.log(f"    tile {done}/{total}")

    def note(self, text: str) -> None:
        if self.log:
            self.log(f"    {text}")


def each_photo(
    p: Plan, progress: Progress, cap: int | None, keep_metadata: bool = False
) -> Iterator[tuple[Item, Photo]]:
    """Each planned input with its pixels, a progress line before each; a file whose data
    cannot be read is skipped and counted in the plan (refused when it is the only input, and
    when no file could be read at all)."""
    read = 0
    for i, item in enumerate(p.items, 1):
        progress.file(i, item)
        try:
            photo = read_photo(item.source, cap, keep_metadata)
        except UserError as e:
            if p.single:
                raise
            p.skip(short_reason(e, item.source))
            continue
        read += 1
        yield item, photo
    if not read:
        raise UserError(
            f"no image in {p.src} could be read ({len(p.skipped)} unreadable: "
            f"{'; '.join(p.skipped)})"
        )


@dataclass
class Result:
    """What a run over files did: the files written, a report per file, the files skipped."""

    written: list[Path] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self, out: str | Path) -> str:
        """One line: what was written where, and how many files were skipped."""
        n = len(self.written)
        where = str(self.written[0]) if n == 1 else f"{n} images in {out}"
        skipped = f" (skipped {len(self.skipped)} unreadable)" if self.skipped else ""
        faces = [r["faces"] for r in self.reports if "faces" in r]
        if faces:
            none = faces.count(0)
            skipped += f"; {sum(faces)} face(s)" + (f", none found in {none} image(s)" * bool(none))
        return f"wrote {where}{skipped}"


def _load(model: Family | str | Path | None, device: str) -> Family | None:
    if model is None or isinstance(model, Family):
        return model
    return load_model(model, device=device)


def prepare(
    name: str | Operation,
    options: dict[str, Any],
    translator: Family | str | Path | None = None,
    device: str = "cpu",
) -> tuple[Operation, dict[str, Any], Context]:
    """The operation, its options checked and typed, and a context holding the model it
    translates with; every refusal that needs no image has happened."""
    op, preset = (name, {}) if isinstance(name, Operation) else resolve(name)
    opts = op.parse({**preset, **{k: v for k, v in options.items() if v is not None}})
    ctx = Context(model=_load(translator, device))
    if "translator" in op.needs and ctx.model is None:
        raise UserError(f"{op.name} needs a model to translate with (a cyclegan run)")
    if op.check is not None:
        op.check(opts, ctx)
    return op, opts, ctx


def _check_items(
    op: Operation, opts: dict[str, Any], ctx: Context, p: Plan, mask: Path | None, cap: int
) -> None:
    """Each input's refusals, from its header alone."""
    mh = imageio.probe_image(mask, cap) if mask is not None else None
    for item in p.items:
        h = item.header
        oh, ow = op.size(h.height, h.width, opts, ctx)
        if oh * ow > cap:
            raise UserError(
                f"{item.source}: {op.name} makes {oh * ow:,} pixels, over the limit of {cap:,}; "
                "raise --max-pixels (or PIXELSMITH_MAX_PIXELS) or use a smaller image"
            )
        check_alpha(item, op.keeps_alpha)
        if mh is not None:
            names = (f"mask {mh.path.name}", f"image {item.source.name}")
            check_mask_size((mh.height, mh.width), (h.height, h.width), names)


def edit_files(
    name: str | Operation,
    src: str | Path,
    out: str | Path,
    *,
    mask: str | Path | None = None,
    translator: Family | str | Path | None = None,
    max_pixels: int | None = None,
    device: str = "cpu",
    log: Log | None = stderr,
    watermark: WatermarkKey | str | Path | None = None,
    message: str | bytes | None = None,
    credentials: Credentials = None,
    keep_metadata: bool = False,
    **options: Any,
) -> Result:
    """Run one operation on an image file or a folder of them (see the module doc).

    `mask`: the mask image of an operation that needs one (white, or transparent, = edit);
    `translator`: the model of an operation that translates (a CycleGAN run or model);
    `max_pixels`: the most pixels an input may declare and a result may have; `log`: where the
    progress lines go (None: nowhere); `watermark`, `message`, `credentials`: mark each result
    and sign it as an edit of its input (`jobs.stamp.open_stamp`); `keep_metadata`: write each
    input's EXIF and XMP (GPS included) into its result, which is off by default; `options`: the
    operation's own (`pixelsmith edit NAME -h`).
    """
    cap = imageio.max_pixels() if max_pixels is None else check_cap(max_pixels)
    stamp = open_stamp(watermark, message, credentials)
    op, opts, ctx = prepare(name, options, translator, device)
    mask_path = Path(mask) if mask is not None else None
    if "mask" in op.needs and mask_path is None:
        raise UserError(
            f"{op.name} needs --mask MASK (white, or transparent, = the pixels to fill)"
        )
    if "mask" not in op.needs and mask_path is not None:
        raise UserError(f"{op.name} takes no mask")
    p = plan(src, out, inputs=[mask_path, stamp.key_path], cap=cap)
    _check_items(op, opts, ctx, p, mask_path, cap)
    if stamp.signer is not None:
        for item in p.items:
            signable(item.target)
    given = op.prepare(opts, [(i.source, i.rel) for i in p.items]) if op.prepare else {}
    mask_tensor = mask_of(read_photo(mask_path, cap)) if mask_path is not None else None
    progress = Progress(len(p), log)
    result = Result(skipped=p.skipped)
    for item, photo in each_photo(p, progress, cap, keep_metadata):
        file_ctx = Context(mask_tensor, ctx.model, given.get(item.source), progress.tiles)
        edited = op.run(photo, opts, file_ctx)
        stamped: dict[str, Any] = {}
        if stamp.active:
            stamped = _stamp(stamp, op, opts, file_ctx, item, photo, edited, translator)
        else:
            write_photo(edited, item.target)
        result.written.append(item.target)
        result.reports.append(
            {"file": str(item.source), "out": str(item.target), **file_ctx.report, **stamped}
        )
        if "note" in file_ctx.report:  # something the user should know, progress or not
            warn(f"{item.source}: {file_ctx.report['note']}")
        elif "faces" in file_ctx.report:
            n = file_ctx.report["faces"]
            progress.note(f"{n} face(s)" if n else "no face found (written unchanged)")
    if note := unmarked(result.reports):
        warn(note)
    p.say_skipped()
    return result


def _stamp(
    stamp: Stamp,
    op: Operation,
    opts: dict[str, Any],
    ctx: Context,
    item: Item,
    photo: Photo,
    edited: Photo,
    translator: Family | str | Path | None,
) -> dict[str, Any]:
    """Mark the edited photo, write it and sign it as an edit of the input file's bytes."""
    claim: dict[str, Any] = {}
    if stamp.signer is not None:
        name = translator if isinstance(translator, str | Path) else None
        model, sha = edit_model(opts, ctx.report, ctx.model, str(name) if name else None)
        parent, note = parent_of(item.source.read_bytes(), item.source.name, photo)
        if note is not None:
            warn(f"{item.source}: {note}")
        claim = {"operation": op.name, "options": opts, "model": model, "model_sha256": sha,
                 "parent": parent}  # fmt: skip
    return stamp_file(edited, item.target, stamp, "edited", **claim)


def apply(
    name: str | Operation,
    image: Any,
    *,
    mask: torch.Tensor | None = None,
    translator: Family | str | Path | None = None,
    **options: Any,
) -> Any:
    """One operation on an image in memory: a `Photo`, or a (C, H, W) float tensor in [0, 1]
    (C = 1 or 3), returned the same way; `mask` (H, W) or (1, 1, H, W), 1 = edit."""
    op, opts, ctx = prepare(name, options, translator)
    if isinstance(image, Photo):
        photo = image
    elif isinstance(image, torch.Tensor):
        if not image.is_floating_point() or image.ndim != 3 or image.shape[0] not in (1, 3):
            raise UserError(
                f"{op.name} takes one (C, H, W) float image in [0, 1] with 1 or 3 channels "
                f"(a Photo for alpha), got a {image.dtype} tensor of shape {tuple(image.shape)}"
            )
        if image.numel() and (float(image.min()) < 0 or float(image.max()) > 1):
            raise UserError(f"{op.name} takes values in [0, 1]; divide 8-bit values by 255")
        photo = Photo(image, None, False, "")
    else:
        raise UserError(
            f"{op.name} takes a (C, H, W) float tensor or a Photo, not a {type(image).__name__}"
        )
    if mask is not None:
        if "mask" not in op.needs:
            raise UserError(f"{op.name} takes no mask")
        ctx.mask = (mask.reshape(1, 1, *mask.shape[-2:]) > 0.5).float()
    out = op.run(photo, opts, ctx)
    return out if isinstance(image, Photo) else out.colour
