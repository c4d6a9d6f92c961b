"""Loading a folder of image files (recursively) with explicit, documented mode conversions.

Each file is read by the guarded reader (``pixelsmith.imageio.read_natural``: size cap checked
from the header, any decoder failure a one-line reason) and decoded to its *natural* channels,
as uint8 (H, W, C):

- ``1`` (bilevel) -> 1 channel, 0 or 255; ``L`` -> 1; ``LA`` -> 2 (gray + alpha).
- ``I;16*`` and ``I`` (16-bit gray) -> 1 channel scaled to 8 bits as ``round(v / 257)``, i.e.
  ``(v + 128) // 257`` after clipping to 0..65535, which maps 0 -> 0 and 65535 -> 255 exactly.
- ``F`` (float gray) -> 1 channel via Pillow's ``convert("L")`` (clipped, rounded).
- ``P`` (palette) -> ``RGBA`` when the file declares transparency, else ``RGB``; ``PA`` -> ``RGBA``.
- ``RGB``, ``RGBA`` as they are; every other mode (CMYK, YCbCr, LAB, HSV, ...) -> ``RGB``.

The EXIF orientation tag is applied. When a size is given, each image is resized in its natural
mode (Pillow premultiplies alpha while resizing) with LANCZOS when either side shrinks and BICUBIC
otherwise. Hidden files and folders (names starting with ".") are ignored. Files that cannot be
read are skipped and reported in one ``PixelsmithWarning``, each with the reader's reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pixelsmith.errors import UserError, warn
from pixelsmith.imageio import ImageReadError, read_natural

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_MODES_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_PARALLEL_MIN = 32  # decode serially below this many files


@dataclass
class FolderImages:
    """Decoded images of a folder in natural channels, with labels from class subfolders."""

    arrays: list[np.ndarray]  # uint8 (H, W, C), C in {1, 2, 3, 4}
    files: list[Path]  # the file of each array
    labels: list[int] | None
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sixteen_bit: int = 0  # how many images were scaled down from 16 bits


def resample_for(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> Image.Resampling:
    """LANCZOS when either side shrinks, else BICUBIC."""
    shrinks = dst_hw[0] < src_hw[0] or dst_hw[1] < src_hw[1]
    return Image.Resampling.LANCZOS if shrinks else Image.Resampling.BICUBIC


def resize_array(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 (H, W, C) array to size (H, W) with Pillow; a no-op when already that size."""
    h, w, c = arr.shape
    if (h, w) == tuple(size):
        return arr
    im = Image.fromarray(arr[..., 0] if c == 1 else arr, _MODES_BY_CHANNELS[c])
    out = im.resize((size[1], size[0]), resample_for((h, w), size))
    return np.asarray(out).reshape(size[0], size[1], c)


def decode_image(path: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """Decode one file to uint8 (H, W, C) in natural channels; returns (array, was_16_bit).

    Raises ImageReadError (a UserError naming the file) when the file cannot be read.
    """
    arr, sixteen = read_natural(path)
    if size is not None:
        arr = resize_array(arr, size)
    return np.ascontiguousarray(arr), sixteen


def _try_decode(path: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, bool] | str:
    """decode_image, or the reader's one-line reason when the file cannot be read."""
    try:
        return decode_image(path, size)
    except ImageReadError as e:
        return e.reason
    except UserError:  # an encrypted file without its key, or changed since: never skipped
        raise
    except Exception as e:  # resizing an odd image failed: still reported per file, never raised
        return " ".join(f"cannot be resized ({type(e).__name__}: {e})".split())[:200]


def list_images(root: Path) -> tuple[list[Path], int]:
    """Image files under root in sorted order, and how many other (non-hidden) files there are."""
    images: list[Path] = []
    others = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                images.append(Path(dirpath, name))
            else:
                others += 1
    images.sort(key=lambda p: p.relative_to(root).parts)
    return images, others


def class_layout(root: Path, files: Sequence[Path]) -> tuple[list[int] | None, list[str]]:
    """Labels from first-level subfolders when images live in >= 2 of them and none at top level."""
    parts = [f.relative_to(root).parts for f in files]
    if any(len(p) == 1 for p in parts):
        return None, []
    classes = sorted({p[0] for p in parts})
    if len(classes) < 2:
        return None, []
    index = {c: i for i, c in enumerate(classes)}
    return [index[p[0]] for p in parts], classes


def _decode_many(
    files: Sequence[Path], size: tuple[int, int] | None
) -> list[tuple[np.ndarray, bool] | str]:
    """Decode files in order, in a small thread pool when there are many."""
    if len(files) < _PARALLEL_MIN:
        return [_try_decode(f, size) for f in files]
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda f: _try_decode(f, size), files))


def _check_listing(root: Path, files: list[Path], others: int) -> None:
    """Raise UserError for an empty folder or one without image files."""
    if files:
        return
    if others == 0:
        raise UserError(f"data folder {root} is empty; point --data at a folder of images")
    exts = " ".join(IMAGE_EXTENSIONS)
    raise UserError(
        f"data folder {root} has no images (looked for {exts} among its {others} files); "
        "point --data at a folder of images"
    )


def _warn_skipped(root: Path, skipped: list[tuple[str, str]]) -> None:
    """Warn once about the files that could not be decoded."""
    if not skipped:
        return
    first = ", ".join(f"{p} ({r})" for p, r in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    warn(f"skipped {len(skipped)} unreadable image file(s) in {root}: {first}{more}")


def load_folder(
    root: str | Path, size: tuple[int, int] | None = None, limit: int | None = None
) -> FolderImages:
    """Decode the images under root (the first `limit` readable ones in sorted order)."""
    root = Path(root)
    files, others = list_images(root)
    _check_listing(root, files, others)
    labels_all, classes = class_layout(root, files)
    want = len(files) if limit is None else min(limit, len(files))
    out = FolderImages([], [], [] if labels_all is not None else None, classes)
    pos = 0
    while len(out.arrays) < want and pos < len(files):
        batch = files[pos : pos + want - len(out.arrays)]
        for i, res in enumerate(_decode_many(batch, size), start=pos):
            if isinstance(res, str):
                out.skipped.append((str(files[i]), res))
                continue
            out.arrays.append(res[0])
            out.files.append(files[i])
            out.sixteen_bit += res[1]
            if out.labels is not None:
                out.labels.append(labels_all[i])
        pos += len(batch)
    if not out.arrays:
        path, reason = out.skipped[0]
        raise UserError(
            f"no readable images in {root} ({len(out.skipped)} files failed to decode, "
            f"e.g. {path}: {reason}); replace or remove the broken files"
        )
    _warn_skipped(root, out.skipped)
    return out
