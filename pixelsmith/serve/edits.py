"""Edits over HTTP: the operations declared in pixelsmith.jobs, on an upload held in memory.

The edit is named by `operation`, or by OpenAI's `model` field: an operation or one of its
variants (`sr-x4`), or a served CycleGAN (which translates). The operation's options arrive as
form fields and are checked by its declaration (`GET /v1/edits` lists them); options that name
files on the server (a model of your own, a boxes file) are never offered. The upload is decoded
by content under the service's pixel cap, the answer's size is checked against its own cap
before any work, and `check()` runs between tiles so a timed-out job stops. The answer is
marked and signed (the service's stamp) as an edit of the upload, which its manifest keeps as
the parent, so an upload with content credentials keeps its chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from pixelsmith.edit.photo import Photo, encode_photo, mask_of, read_photo_bytes
from pixelsmith.errors import UserError
from pixelsmith.faces.detect import default_detector, fallback_note
from pixelsmith.imageio import ImageReadError
from pixelsmith.jobs import Context, Operation, operations, resolve
from pixelsmith.jobs.stamp import Stamp, edit_model, parent_of
from pixelsmith.models.base import Family
from pixelsmith.serve.errors import validation_message
from pixelsmith.serve.generation import check_size, quality_of, stamped
from pixelsmith.serve.schemas import EDIT_FIELDS, EditFields

PROMPT_IGNORED = (
    "prompt is ignored: pixelsmith's edits take no text; the operation and its options say "
    "what to do"
)


def cards(translators: dict[str, Family]) -> list[dict[str, Any]]:
    """GET /v1/edits: every operation with its options; translate names the served CycleGANs
    (and is left out when none is served)."""
    out = []
    for op in operations().values():
        card = op.card()
        if "translator" in op.needs:
            if not translators:
                continue
            card["models"] = list(translators)
        out.append(card)
    return out


@dataclass
class Edit:
    """A checked edit request."""

    op: Operation
    options: dict[str, Any]
    model: Family | None
    fmt: str
    quality: int
    size: str | None
    notes: list[str] = field(default_factory=list)
    model_name: str | None = None  # the served name of the model it translates with


def _operation(
    fields: EditFields, translators: dict[str, Family], generators: set[str]
) -> tuple[Operation, dict[str, Any], Family | None]:
    """The operation a request names (see the module doc), the options its name sets, and the
    model it translates with."""
    name, model = fields.operation, fields.model
    if model in translators:
        if name not in (None, "translate"):
            raise UserError(f"model {model!r} is a CycleGAN, which translates; it cannot {name}")
        return operations()["translate"], {}, translators[model]
    if model in generators:
        raise UserError(
            f"{model} is a generator (POST /v1/images/generations draws from it); an edit's model "
            "is an operation (GET /v1/edits) or a served CycleGAN"
        )
    if name == "translate" and model is not None:
        served = ", ".join(translators) or "none"
        raise UserError(
            f"unknown model {model!r} to translate with; the served CycleGANs: {served}"
        )
    if name is None and model is None:
        raise UserError(
            f"name the edit: operation (or OpenAI's model) is one of {', '.join(operations())}"
        )
    try:
        op, preset = resolve(model or name)  # type: ignore[arg-type]
    except UserError as e:
        if model is None:
            raise
        raise UserError(
            f"unknown model {model!r}: an edit's model is an operation or a variant of one "
            f"({str(e).split('the operations are ')[-1]}) or a served CycleGAN"
        ) from None
    if name is not None and model is not None and resolve(name)[0] is not op:
        raise UserError(f"operation {name!r} and model {model!r} name different edits; give one")
    if "translator" not in op.needs:
        return op, preset, None
    if len(translators) != 1:
        served = ", ".join(translators) or "none is served"
        raise UserError(f"translate needs model: the CycleGAN to translate with ({served})")
    return op, preset, next(iter(translators.values()))


def plan_edit(
    form: dict[str, str], translators: dict[str, Family], generators: set[str], has_mask: bool
) -> Edit:
    """The edit a form's text fields ask for, every field and option checked; UserError (a 400)
    otherwise."""
    form = {k: v for k, v in form.items() if v != ""}  # an empty field is an unset one
    try:
        fields = EditFields.model_validate({k: v for k, v in form.items() if k in EDIT_FIELDS})
    except ValidationError as e:
        raise UserError(validation_message(list(e.errors()), EditFields)) from None
    op, preset, model = _operation(fields, translators, generators)
    given = {k: v for k, v in form.items() if k not in EDIT_FIELDS}
    clash = sorted(set(given) & set(preset))
    if clash:
        variant = fields.model if fields.model in op.variants else fields.operation
        raise UserError(f"{variant} sets {clash[0]} itself; leave it out, or name {op.name}")
    options = op.parse({**preset, **given}, remote=True)
    ctx = Context(model=model)
    if op.check is not None:
        op.check(options, ctx)
    notes: list[str] = []
    if fields.prompt:
        notes.append(PROMPT_IGNORED)
    if has_mask and "mask" not in op.needs:
        notes.append(f"the mask is ignored: {op.name} takes none")
    if options.get("detector") == "auto" and (note := fallback_note(default_detector())):
        notes.append(note)
    quality = quality_of(fields.quality, notes)
    name = next((k for k, m in translators.items() if m is model), None)
    return Edit(op, options, model, fields.output_format, quality, fields.size, notes, name)


class EditResult(NamedTuple):
    """An edit's answer: the image's bytes, its (height, width), what the edit found, and the
    mark in its pixels (key id and message; None when unmarked)."""

    data: bytes
    size: tuple[int, int]
    report: dict[str, Any]
    watermark: dict[str, str] | None


def read_upload(data: bytes, what: str, cap: int) -> Photo:
    """An uploaded image as a Photo, decoded by content under the pixel cap."""
    try:
        return read_photo_bytes(data, what, cap)
    except ImageReadError as e:  # the reader's fix names a CLI setting; say the service's
        raise UserError(f"the {what} {e.reason}") from None


def run_edit(
    edit: Edit,
    upload: bytes,
    mask: bytes | None,
    max_pixels: int,
    max_output_pixels: int,
    check: Any,
    stamp: Stamp | None = None,
    upload_name: str | None = None,
) -> EditResult:
    """The edited image's bytes, its (height, width), what the edit found and its mark; decoding
    runs here too, off the event loop. With `stamp`, the answer is marked and signed as an edit
    of the upload (called `upload_name`); its notes join `edit.notes`."""
    op = edit.op
    photo = read_upload(upload, "upload", max_pixels)
    ctx = Context(model=edit.model, tiles=lambda _done, _total: check())
    if mask is not None and "mask" in op.needs:
        ctx.mask = mask_of(read_upload(mask, "mask", max_pixels))
    h, w = photo.size
    oh, ow = op.size(h, w, edit.options, ctx)
    if oh * ow > max_output_pixels:
        raise UserError(
            f"{op.name} would answer {oh * ow:,} pixels, over the service's limit of "
            f"{max_output_pixels:,}; send a smaller image"
        )
    check_size(edit.size, f"{ow}x{oh}", f"{op.name} of this {w}x{h} image answers")
    if photo.alpha is not None and edit.fmt == "jpeg" and op.keeps_alpha:
        raise UserError("the image has alpha, which JPEG cannot hold; ask for png or webp")
    out = op.run(photo, edit.options, ctx)
    stamp = stamp or Stamp()
    claim: dict[str, Any] = {}
    if stamp.signer is not None:
        model, sha = edit_model(edit.options, ctx.report, edit.model, edit.model_name)
        parent, note = parent_of(upload, upload_name or "upload", photo)
        if note is not None:
            edit.notes.append(note)
        claim = {"operation": op.name, "options": remote_options(edit), "model": model,
                 "model_sha256": sha, "parent": parent}  # fmt: skip
    target = Path(f"result.{edit.fmt}")
    data, mark = stamped(stamp, out.colour,
                         lambda x: encode_photo(out.with_pixels(x), target, edit.quality),
                         edit.fmt, edit.notes, "edited", **claim)  # fmt: skip
    return EditResult(data, out.size, ctx.report, mark)


def remote_options(edit: Edit) -> dict[str, Any]:
    """The edit's options as the answer and its manifest show them (those HTTP offers)."""
    return {
        o.name: list(v) if isinstance(v := edit.options[o.name], tuple) else v
        for o in edit.op.remote_options()
    }
