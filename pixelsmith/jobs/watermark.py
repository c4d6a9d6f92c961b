"""Watermarks over files: `pixelsmith mark embed IN -o OUT --key KEY` and `mark detect IN`.

Everything that can be refused (the key, the message, every input's size) is refused before the
first write; outputs keep their input's name and format (a JPEG at quality 95 keeps the mark).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelsmith import imageio
from pixelsmith.edit.photo import write_photo
from pixelsmith.errors import UserError
from pixelsmith.jobs.files import Log, Progress, Result, each_photo, stderr
from pixelsmith.jobs.plan import check_cap, find_inputs, plan
from pixelsmith.provenance import watermark as wm
from pixelsmith.provenance.keys import WatermarkKey, load_key, parse_message


def _key(key: WatermarkKey | str | Path) -> WatermarkKey:
    return key if isinstance(key, WatermarkKey) else load_key(key)


def _check_sizes(items: list[Any], least: int, what: str) -> None:
    small = [i for i in items if min(i.header.width, i.header.height) < least]
    if small:
        i = small[0]
        more = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
        raise UserError(
            f"{i.source} is {i.header.width}x{i.header.height}{more}: too small to {what}; a "
            f"watermark needs at least {least} pixels on each side"
        )


def mark_files(
    src: str | Path,
    out: str | Path,
    key: WatermarkKey | str | Path,
    *,
    message: str | None = None,
    psnr: float = wm.DEFAULT_PSNR,
    max_pixels: int | None = None,
    log: Log | None = stderr,
) -> Result:
    """Mark an image file or a folder of them with the key (and a message that fits it)."""
    k = _key(key)
    data = parse_message(message, k)
    cap = imageio.max_pixels() if max_pixels is None else check_cap(max_pixels)
    key_path = None if isinstance(key, WatermarkKey) else Path(key)
    p = plan(src, out, inputs=[key_path], cap=cap)
    _check_sizes(p.items, wm.MIN_EMBED_SIDE, "mark")
    if not 20 <= psnr <= 60:
        raise UserError(f"--psnr must be 20 to 60 dB, got {psnr}")
    result = Result(skipped=p.skipped)
    for item, photo in each_photo(p, Progress(len(p), log), cap):
        marked = wm.embed(photo.colour, k, data, psnr)
        result.written.append(write_photo(photo.with_pixels(marked), item.target))
        result.reports.append({"file": str(item.source), "out": str(item.target),
                               "key_id": k.key_id, "message_hex": data.hex()})  # fmt: skip
    p.say_skipped()
    return result


def detect_files(
    src: str | Path,
    key: WatermarkKey | str | Path,
    *,
    fpr: float = wm.DEFAULT_FPR,
    expect: str | None = None,
    max_pixels: int | None = None,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """Look for the key's mark in an image file or each image of a folder; a row per image."""
    k = _key(key)
    if not 0 < fpr < 1:
        raise UserError(f"--fpr must be between 0 and 1, got {fpr}")
    want = parse_message(expect, k) if expect is not None else None
    cap = imageio.max_pixels() if max_pixels is None else check_cap(max_pixels)
    key_path = None if isinstance(key, WatermarkKey) else Path(key)
    p = find_inputs(src, [key_path], cap)
    _check_sizes(p.items, wm.MIN_DETECT_SIDE, "hold a readable mark")
    rows = []
    for item, photo in each_photo(p, Progress(len(p), log), cap):
        d = wm.detect(photo.colour, k, fpr, expect=want)
        rows.append({"file": str(item.source), "key_id": k.key_id, **d.to_dict()})
    p.say_skipped()
    return rows
