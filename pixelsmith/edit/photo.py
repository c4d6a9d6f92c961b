"""A user's photo for editing: read in any mode the data loaders take, written back in the same.

Reading goes through the guarded reader (`pixelsmith.imageio.read_image`: size cap from the
header, EXIF orientation applied, one clear error per bad file). The pixels become `colour`, a
float (C, H, W) tensor in [0, 1] with C = 1 (grey) or 3 (RGB), plus `alpha` (1, H, W) when the
file has one; 16-bit grey (`I;16`, `I`) keeps its 16 bits (v / 65535). Modes map as:
`1`, `L`, `F` -> grey; `LA` -> grey + alpha; `P` -> RGB, or RGBA when it declares transparency;
`RGBA`, `PA` -> RGB + alpha; every other mode (CMYK, YCbCr, ...) -> RGB.

Writing puts the same mode back: grey as `L` (or 16-bit `I;16` when it was 16-bit and the format
holds it: PNG, TIFF), RGB, and the alpha channel beside them (`LA`, `RGBA`); a palette image
comes back as RGB(A), since edits make new colours. JPEG holds neither alpha nor 16 bits: an
image with alpha refuses a .jpg output, a 16-bit one is written in 8 bits. WebP has no grey mode:
Pillow writes grey as RGB (and grey + alpha as RGBA). Files are written
atomically (temporary file, then rename): a failure leaves no half-written file.

Metadata: nothing of the input's EXIF, GPS, XMP or IPTC is written back (the pixels are encoded
afresh). Its ICC colour profile is kept when it describes the pixels written (an RGB profile on
RGB pixels, a grey one on grey), since the edits leave the pixels in the input's colour space; a
profile that cannot be kept (CMYK after conversion to RGB, grey pixels a WebP writes as RGB, a
BMP) is left out with a warning, never silently.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pixelsmith.errors import UserError, warn
from pixelsmith.imageio import read_image, read_image_bytes
from pixelsmith.utils.files import atomic_write_bytes

SIXTEEN = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_HOLDS_16 = ("PNG", "TIFF")
_HOLDS_ALPHA = ("PNG", "WEBP", "TIFF")
_HOLDS_ICC = ("PNG", "JPEG", "WEBP", "TIFF")
_HOLDS_META = {"exif": ("PNG", "JPEG", "WEBP", "TIFF"), "xmp": ("PNG", "JPEG", "WEBP")}
_ORIENTATION = 0x0112


@dataclass
class Photo:
    """Pixels of one image file and how to write them back."""

    colour: Tensor  # (C, H, W) float in [0, 1], C = 1 or 3
    alpha: Tensor | None  # (1, H, W) float in [0, 1]
    sixteen_bit: bool
    source_mode: str
    icc: bytes | None = None  # the input's colour profile, when it describes these pixels
    # The input's EXIF and XMP, only when the user asked to keep them (--keep-metadata).
    metadata: dict[str, bytes] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.colour.shape[-2]), int(self.colour.shape[-1])

    def with_pixels(self, colour: Tensor, alpha: Tensor | None = None) -> Photo:
        """The same photo with new pixels (and alpha, e.g. resized with them)."""
        return replace(self, colour=colour, alpha=self.alpha if alpha is None else alpha)


def _tensor(arr: np.ndarray, scale: float) -> Tensor:
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.astype(np.float32) / scale).permute(2, 0, 1).contiguous()


def read_photo(path: str | Path, cap: int | None = None, keep_metadata: bool = False) -> Photo:
    """An image file as a Photo (see the module doc for the mode rules); `cap` is the most pixels
    its header may declare (default: imageio.max_pixels()); `keep_metadata` carries its EXIF and
    XMP to what is written from it (by default nothing but the colour profile is)."""
    return photo_of(read_image(path, cap), keep_metadata)


def read_photo_bytes(data: bytes, name: str, cap: int | None = None) -> Photo:
    """An image held in memory (an upload) as a Photo; see imageio.read_image_bytes."""
    return photo_of(read_image_bytes(data, name, cap))


def _profile_space(icc: bytes) -> str:
    """An ICC profile's colour space ("RGB", "GRAY", "CMYK", ...), or "" if it cannot be read."""
    from PIL import ImageCms

    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space.strip()
    except (OSError, ValueError, TypeError):
        return ""


def _photo(im: Image.Image) -> Photo:
    mode = im.mode
    if mode in SIXTEEN:
        arr = np.clip(np.asarray(im, dtype=np.int64), 0, 65535)
        return Photo(_tensor(arr, 65535.0), None, True, mode)
    if mode == "F":
        arr = np.clip(np.asarray(im, dtype=np.float32), 0, 255)
        return Photo(_tensor(arr, 255.0), None, False, mode)
    if mode in ("1", "L"):
        return Photo(_tensor(np.asarray(im.convert("L")), 255.0), None, False, mode)
    if mode == "LA":
        t = _tensor(np.asarray(im), 255.0)
        return Photo(t[:1], t[1:], False, mode)
    has_alpha = mode in ("RGBA", "PA", "RGBa") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        t = _tensor(np.asarray(im.convert("RGBA")), 255.0)
        return Photo(t[:3], t[3:], False, mode)
    return Photo(_tensor(np.asarray(im.convert("RGB")), 255.0), None, False, mode)


def _metadata(im: Image.Image) -> dict[str, bytes] | None:
    """The EXIF (its orientation reset: the pixels are already upright) and XMP of an image."""
    out: dict[str, bytes] = {}
    exif = im.getexif()
    if exif:
        exif.pop(_ORIENTATION, None)
        out["exif"] = exif.tobytes()
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if xmp:
        out["xmp"] = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
    return out or None


def photo_of(im: Image.Image, keep_metadata: bool = False) -> Photo:
    """A decoded image as a Photo, with its colour profile when it fits the pixels, and its EXIF
    and XMP when asked to keep them (closes it)."""
    icc = im.info.get("icc_profile") or None
    meta = _metadata(im) if keep_metadata else None
    try:
        photo = _photo(im)
    finally:
        im.close()
    photo = replace(photo, metadata=meta)
    if icc is None:
        return photo
    space = _profile_space(icc)
    if space == ("GRAY" if photo.colour.shape[0] == 1 else "RGB"):
        return replace(photo, icc=icc)
    warn(
        f"the image's {space or 'unreadable'} colour profile does not describe its "
        f"{photo.source_mode} pixels as pixelsmith reads them; outputs are written without it"
    )
    return photo


def output_format(path: Path) -> str:
    """The Pillow format an output suffix asks for."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"cannot write {path}: use one of the suffixes {', '.join(sorted(set(_FORMATS)))}"
        )
    return fmt


def check_writable(photo_has_alpha: bool, path: Path) -> None:
    """Refuse an output format that would lose the image's alpha."""
    fmt = output_format(path)
    if photo_has_alpha and fmt not in _HOLDS_ALPHA:
        raise UserError(
            f"{path.name}: {fmt} holds no alpha channel and the image has one; "
            "write a .png, .webp or .tif instead"
        )


def _to_uint(t: Tensor, bits: int) -> np.ndarray:
    top = 65535 if bits == 16 else 255
    arr = (t.clamp(0, 1) * top).round().permute(1, 2, 0).cpu().numpy()
    return arr.astype(np.uint16 if bits == 16 else np.uint8)


def encode_photo(photo: Photo, path: Path, quality: int = 95) -> bytes:
    """The file bytes of a Photo in the format `path`'s suffix names, in the photo's mode, with
    no metadata (no EXIF, no location) but its colour profile, unless the photo was read with
    `keep_metadata`."""
    fmt = output_format(path)
    check_writable(photo.alpha is not None, path)
    grey = photo.colour.shape[0] == 1
    if grey and photo.sixteen_bit and fmt in _HOLDS_16 and photo.alpha is None:
        im = Image.fromarray(_to_uint(photo.colour, 16)[..., 0])  # a uint16 array: I;16
    else:
        pixels = photo.colour if photo.alpha is None else torch.cat([photo.colour, photo.alpha])
        arr = _to_uint(pixels, 8)
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
        im = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    buf = io.BytesIO()
    options: dict = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if photo.icc is not None:
        if fmt in _HOLDS_ICC and not (grey and fmt == "WEBP"):
            options["icc_profile"] = photo.icc
        else:
            warn(f"{path.name}: {fmt} cannot carry this image's colour profile; written without it")
    for key, data in (photo.metadata or {}).items():  # only what --keep-metadata asked for
        if key == "xmp" and fmt == "PNG":  # Pillow writes a PNG's XMP as an iTXt chunk only
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", data.decode("utf-8", "replace"))
            options["pnginfo"] = info
        elif fmt in _HOLDS_META[key]:
            options[key] = data
        else:
            warn(f"{path.name}: {fmt} cannot carry the input's {key.upper()}; written without it")
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def write_photo(photo: Photo, path: str | Path) -> Path:
    """Write a Photo atomically in its own mode (see the module doc)."""
    path = Path(path)
    data = encode_photo(photo, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def mask_of(mask: Photo) -> Tensor:
    """A mask photo as (1, 1, H, W) float, 1 = the pixels to edit.

    A mask with transparent pixels marks them by transparency (alpha below half), as OpenAI's
    images API does; any other mask marks them white (luminance above half), as pixelsmith's own
    masks do (a fully opaque RGBA mask is read by its colour).
    """
    if mask.alpha is not None and bool((mask.alpha < 0.5).any()):
        return (mask.alpha < 0.5).float()[None]
    grey = mask.colour if mask.colour.shape[0] == 1 else mask.colour.mean(0, keepdim=True)
    return (grey > 0.5).float()[None]
