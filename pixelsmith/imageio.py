"""Image files in and out, and sample grids: float32 NCHW in [0, 1] at the boundary.

Every image file pixelsmith reads goes through one guarded reader: ``probe_image`` (the header
only: format, mode, size; no pixel data is decoded) and ``read_image`` (the decoded,
EXIF-transposed image in its natural mode). Both

- read only the formats in ``READ_FORMATS`` (by content, not by file name), so a file posing as an
  image cannot reach a plugin such as EPS, which runs Ghostscript;
- refuse an image whose header declares more than ``max_pixels()`` pixels (``MAX_PIXELS``, 178
  million, or the env ``PIXELSMITH_MAX_PIXELS``) before any pixel is decoded;
- turn whatever Pillow raises on a bad file (OSError, SyntaxError, ValueError, struct.error,
  EOFError, DecompressionBombError, ZeroDivisionError, ...) into an ``ImageReadError`` (a
  ``UserError``) whose one sentence names the file, and keep Pillow's own warnings
  (DecompressionBombWarning, truncated or corrupt EXIF, ...) from leaking out.

``to_natural`` states the one mode conversion (see its docstring) that ``load_image`` and the
folder loader share.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from pixelsmith.errors import UserError
from pixelsmith.utils.files import atomic_write_bytes

# ---------------------------------------------------------------- the guarded reader

MAX_PIXELS = 178_000_000  # about Pillow's own error threshold (2 * Image.MAX_IMAGE_PIXELS)
MAX_PIXELS_ENV = "PIXELSMITH_MAX_PIXELS"
# Pillow format ids the reader accepts (JPEG covers MPO, which phones often write).
READ_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "DIB", "TIFF", "GIF", "PPM", "TGA")
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_FORMATS_TEXT = "PNG, JPEG, WebP, BMP, TIFF, GIF or PPM"
_ORIENTATION = 0x0112  # the EXIF orientation tag
_SWAPS_SIDES = frozenset({5, 6, 7, 8})  # orientations that turn the image by 90 degrees


class ImageReadError(UserError):
    """An image file that cannot be read; `reason` is the message without the file's name."""

    def __init__(self, path: str | os.PathLike, reason: str, fix: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"image {path} {reason}; {fix}")


class ImageTooLarge(ImageReadError):
    """An image that declares more pixels than the limit: readable, but refused."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header declares; width and height as read_image returns them."""

    path: Path
    format: str
    mode: str
    width: int  # after the EXIF orientation, as read_image returns it
    height: int

    @property
    def pixels(self) -> int:
        """Width times height."""
        return self.width * self.height


def max_pixels() -> int:
    """The most pixels an image may declare: env PIXELSMITH_MAX_PIXELS, else MAX_PIXELS."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return MAX_PIXELS
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise UserError(
            f"{MAX_PIXELS_ENV}={text!r} is not a positive whole number of pixels; "
            f"set it to e.g. {MAX_PIXELS} or unset it"
        )
    return value


def _mp(pixels: int) -> str:
    """A pixel count in megapixels, as a short text."""
    return f"{pixels / 1e6:,.0f} MP" if pixels >= 10**6 else f"{pixels / 1e6:.2f} MP"


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: contextlib.AbstractContextManager | None = None


@contextlib.contextmanager
def _pillow_quiet() -> Iterator[None]:
    """Silence Pillow's warnings while any thread reads an image, leaving others' untouched.

    warnings.catch_warnings swaps process-wide state, so threads reading at once (the folder
    loader's pool) share one entry: the first in installs the filters, the last out restores them.
    """
    global _quiet_depth, _quiet_saved
    with _quiet_lock:
        if _quiet_depth == 0:
            saved = warnings.catch_warnings()
            saved.__enter__()
            warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
            warnings.filterwarnings("ignore", module=re.escape(__name__) + "$")
            warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
            _quiet_saved = saved
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                _quiet_saved.__exit__(None, None, None)
                _quiet_saved = None


def _allow_pillow(cap: int) -> None:
    """Raise Pillow's own bomb limit when PIXELSMITH_MAX_PIXELS asks for more than it allows."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and cap > 2 * limit:
        Image.MAX_IMAGE_PIXELS = cap // 2 + 1


def _formats() -> tuple[str, ...]:
    """READ_FORMATS that this Pillow build can open (WebP may be missing from a build)."""
    if any(f not in Image.OPEN for f in READ_FORMATS):
        Image.init()
    return tuple(f for f in READ_FORMATS if f in Image.OPEN)


def _declared_size(path: Path, data: bytes | None = None) -> tuple[int, int] | None:
    """(width, height) from the header without Pillow's bomb check, or None if unknown."""
    try:
        with open(path, "rb") if data is None else io.BytesIO(data) as f:
            prefix = f.read(16)
            for fmt in _formats():
                factory, accept = Image.OPEN[fmt]
                ok = not accept or accept(prefix)
                if not ok or isinstance(ok, str):
                    continue
                f.seek(0)
                try:
                    return tuple(factory(f, os.fspath(path)).size)
                except Exception:
                    continue
    except Exception:
        pass
    return None


def _too_big(path: Path, size: tuple[int, int] | None, pixels: int, cap: int) -> ImageTooLarge:
    """The error for an image that declares more pixels than the cap."""
    dims = f"{size[0]}x{size[1]} pixels" if size else f"{pixels:,} pixels"
    return ImageTooLarge(
        path,
        f"declares {dims} ({_mp(pixels)}), more than pixelsmith reads ({_mp(cap)})",
        f"shrink it first, or raise the limit (--max-pixels, or {MAX_PIXELS_ENV})",
    )


def _failure(path: Path, e: BaseException, cap: int, data: bytes | None = None) -> ImageReadError:
    """The ImageReadError for whatever Pillow (or the OS) raised reading path."""
    if isinstance(e, ImageReadError):
        return e
    if isinstance(e, FileNotFoundError):
        return ImageReadError(path, "does not exist", "check the path")
    if isinstance(e, IsADirectoryError) or path.is_dir():
        return ImageReadError(path, "is a folder, not a file", "pass an image file")
    if isinstance(e, PermissionError):
        return ImageReadError(path, "cannot be opened (permission denied)", "check its permissions")
    if isinstance(e, Image.DecompressionBombError):
        m = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(m.group(1)) if m else cap + 1
        size = _declared_size(path, data)
        return _too_big(path, size, size[0] * size[1] if size else pixels, cap)
    if isinstance(e, Image.UnidentifiedImageError):
        return ImageReadError(
            path,
            "is not an image pixelsmith reads (empty, damaged or another format)",
            f"pass a {_FORMATS_TEXT} file",
        )
    detail = " ".join(f"{type(e).__name__}: {e}".split())[:160]
    return ImageReadError(
        path,
        f"cannot be decoded ({detail})",
        "replace or remove the damaged file",
    )


def _header(im: Image.Image, path: Path) -> ImageHeader:
    """The header of an opened (not yet decoded) image, sides as read_image returns them."""
    w, h = im.size
    orientation = 1
    if im.format != "PNG":  # PNG keeps EXIF after the pixels: reading it would decode
        with contextlib.suppress(Exception):
            orientation = int(im.getexif().get(_ORIENTATION, 1))
    if orientation in _SWAPS_SIDES:
        w, h = h, w
    return ImageHeader(path, str(im.format), im.mode, w, h)


def _check_header(header: ImageHeader, cap: int) -> None:
    """Refuse a header that declares no pixels or more than the cap."""
    if header.width <= 0 or header.height <= 0:
        raise ImageReadError(
            header.path,
            f"declares {header.width}x{header.height} pixels",
            "replace or remove the damaged file",
        )
    if header.pixels > cap:
        raise _too_big(header.path, (header.width, header.height), header.pixels, cap)


def _encrypted_bytes(path: Path) -> bytes | None:
    """The decrypted bytes of an encrypted image file (pixelsmith keys encrypt), else None: the
    image is decoded from memory, never written to disk in the clear."""
    from pixelsmith.utils import encryption

    try:
        with open(path, "rb") as f:
            if f.read(len(encryption.MAGIC)) != encryption.MAGIC:
                return None
    except OSError:
        return None  # missing or unreadable: Pillow's open reports it
    return encryption.decrypt(path.read_bytes(), path)


@contextlib.contextmanager
def _opened(
    path: str | os.PathLike, cap: int, data: bytes | None = None
) -> Iterator[tuple[Image.Image, ImageHeader]]:
    """Image.open restricted to READ_FORMATS, quiet, its header checked against the cap; with
    `data`, the image is those bytes (an upload) and `path` only names it in errors."""
    path = Path(path)
    if data is None:
        data = _encrypted_bytes(path)
    _allow_pillow(cap)
    with _pillow_quiet():
        try:
            im = Image.open(path if data is None else io.BytesIO(data), formats=_formats())
        except Exception as e:
            raise _failure(path, e, cap, data) from None
        with im:
            try:
                header = _header(im, path)
                _check_header(header, cap)
            except Exception as e:
                raise _failure(path, e, cap, data) from None
            yield im, header


def probe_image(path: str | os.PathLike, cap: int | None = None) -> ImageHeader:
    """The header of an image file (format, mode, size) without decoding any pixels.

    Raises ImageReadError (a UserError naming the file) for a file that is missing, not an image
    pixelsmith reads, or declares more pixels than `cap` (default max_pixels()).
    """
    with _opened(path, max_pixels() if cap is None else cap) as (_, header):
        return header


def read_image(path: str | os.PathLike, cap: int | None = None) -> Image.Image:
    """Decode an image file: the whole image, EXIF orientation applied, in its natural mode.

    The size is checked against `cap` (default max_pixels()) from the header before anything is
    decoded; any failure is an ImageReadError (a UserError) naming the file, and Pillow's
    warnings stay quiet. The returned image is fully loaded and holds no open file.
    """
    return _decode(Path(path), max_pixels() if cap is None else cap)


def _decode(path: Path, cap: int, data: bytes | None = None) -> Image.Image:
    with _opened(path, cap, data) as (im, _):
        try:
            im.load()
            ImageOps.exif_transpose(im, in_place=True)
            im.load()
            return im
        except Exception as e:
            raise _failure(path, e, cap, data) from None


def read_image_bytes(data: bytes, name: str, cap: int | None = None) -> Image.Image:
    """read_image for an image held in memory (an upload): the format is found from the bytes
    alone, the header is checked against `cap` (default max_pixels()) before any pixel is
    decoded, and `name` stands for the file in the one-sentence error."""
    return _decode(Path(name), max_pixels() if cap is None else cap, data)


def to_natural(im: Image.Image) -> tuple[np.ndarray, bool]:
    """A decoded image as uint8 (H, W, C) in natural channels, and whether it was 16-bit.

    - ``1`` (bilevel) -> 1 channel, 0 or 255; ``L`` -> 1; ``LA`` -> 2 (gray + alpha).
    - ``I;16*`` and ``I`` (16-bit gray) -> 1 channel scaled to 8 bits as ``round(v / 257)``,
      i.e. ``(v + 128) // 257`` after clipping to 0..65535 (0 -> 0, 65535 -> 255 exactly).
    - ``F`` (float gray) -> 1 channel via Pillow's ``convert("L")`` (clipped, rounded).
    - ``P`` (palette) -> ``RGBA`` when the file declares transparency, else ``RGB``;
      ``PA`` -> ``RGBA``.
    - ``RGB``, ``RGBA`` as they are; every other mode (CMYK, YCbCr, LAB, HSV, ...) -> ``RGB``.
    """
    mode = im.mode
    sixteen = mode in SIXTEEN_BIT_MODES
    if sixteen:
        v = np.asarray(im).astype(np.int64)
        arr = ((np.clip(v, 0, 65535) + 128) // 257).astype(np.uint8)
    elif mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im, dtype=np.uint8)
    elif mode == "P":
        alpha = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        arr = np.asarray(im.convert("RGBA" if alpha else "RGB"), dtype=np.uint8)
    else:
        target = {"1": "L", "F": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA"}.get(mode, "RGB")
        arr = np.asarray(im.convert(target), dtype=np.uint8)
    return np.ascontiguousarray(arr.reshape(*arr.shape[:2], -1)), sixteen


def read_natural(path: str | os.PathLike, data: bytes | None = None) -> tuple[np.ndarray, bool]:
    """read_image then to_natural: uint8 (H, W, C) with C in 1..4, and whether it was 16-bit;
    with `data`, the image is those bytes and `path` names it (read_image_bytes)."""
    path = Path(path)
    im = read_image(path) if data is None else read_image_bytes(data, str(path))
    try:
        return to_natural(im)
    except Exception as e:  # a mode Pillow decodes but cannot convert
        raise _failure(path, e, max_pixels()) from None
    finally:
        im.close()


# ---------------------------------------------------------------- writing, grids, tensors


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, fill: float = 1.0):
    """Tile an (N, C, H, W) batch into one (C, H', W') image with `pad` pixels between tiles."""
    if images.ndim != 4:
        raise ValueError(f"make_grid expects NCHW, got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    grid = torch.full((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), fill, dtype=images.dtype)
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, y : y + h, x : x + w] = images[i]
    return grid


def to_pil(image: torch.Tensor) -> Image.Image:
    """Convert one (C, H, W) float image in [0, 1] to a Pillow image (L, RGB or RGBA), rounding."""
    if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected (C, H, W) with C in 1, 3, 4; got {tuple(image.shape)}")
    arr = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0], mode="L")
    return Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)))


def save_image(
    image: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, scale: int = 1
) -> Path:
    """Save a (C, H, W) image, or an (N, C, H, W) batch as a grid, to a PNG (atomically);
    `scale` enlarges it that many times with nearest neighbours (pixels stay sharp squares)."""
    atomic_write_bytes(path, png_bytes(image, nrow, scale))
    return Path(path)


def png_bytes(image: torch.Tensor, nrow: int | None = None, scale: int = 1) -> bytes:
    """The PNG file of a (C, H, W) image or an (N, C, H, W) grid, `scale` times enlarged."""
    if image.ndim == 4:
        image = make_grid(image, nrow=nrow)
    im = to_pil(image)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def view_scale(height: int, width: int) -> int:
    """How many times to enlarge grids of small images meant for looking at (3x up to 32
    pixels, 2x up to 64): a grid of 28-pixel images is otherwise a postage stamp."""
    side = max(height, width)
    return 3 if side <= 32 else 2 if side <= 64 else 1


def save_images(images: torch.Tensor, folder: str | os.PathLike, prefix: str = "") -> list[Path]:
    """Save each image of an (N, C, H, W) batch as its own PNG in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(images) - 1)))
    return [save_image(img, folder / f"{prefix}{i:0{width}d}.png") for i, img in enumerate(images)]


def load_image(
    path: str | os.PathLike, channels: int = 3, data: bytes | None = None
) -> torch.Tensor:
    """Load an image file as a (1, C, H, W) float tensor in [0, 1] with 1, 3 or 4 channels.

    The file goes through read_natural (the guarded reader, then to_natural's rules); gray ->
    RGB repeats the gray value, RGB -> gray is Pillow's convert("L") (ITU-R 601-2 luma), alpha is
    added as 255 or dropped without compositing. With `data`, the image is those bytes.
    """
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise UserError(f"channels must be 1, 3 or 4, got {channels}")
    nat, _ = read_natural(path, data)
    c = nat.shape[-1]
    if c != channels:
        src = Image.fromarray(
            nat[..., 0] if c == 1 else nat, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
        )
        nat = np.asarray(src.convert(mode)).reshape(*nat.shape[:2], channels)
    t = torch.from_numpy(nat.copy()).permute(2, 0, 1)  # own, writable memory
    return t[None].float() / 255.0
