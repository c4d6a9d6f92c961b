"""Full-reference metrics on image files: two images, or two folders of matching names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pixelsmith.errors import UserError
from pixelsmith.imageio import load_image, probe_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
PAIR_METRICS = ("psnr", "ssim", "ms-ssim")
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _channels(path: Path) -> int:
    """1 for a gray image file, else 3, from its header (the guarded reader's, no decoding)."""
    return 1 if probe_image(path).mode in GRAY_MODES else 3


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def match_pairs(a: str | Path, b: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, path_a, path_b) for two files, or for the files two folders share by name."""
    a, b = Path(a), Path(b)
    for p in (a, b):
        if not p.exists():
            raise UserError(f"{p} does not exist; check the path")
    if a.is_dir() != b.is_dir():
        raise UserError(f"compare two images or two folders, not {a} with {b}")
    if not a.is_dir():
        return [(a.name, a, b)]
    fa, fb = _images(a), _images(b)
    common = sorted(fa.keys() & fb.keys())
    only = sorted(fa.keys() ^ fb.keys())
    if not common:
        raise UserError(f"{a} and {b} share no image file names")
    if only:
        shown = ", ".join(only[:5]) + (" …" if len(only) > 5 else "")
        raise UserError(f"{len(only)} image(s) have no counterpart of the same name: {shown}")
    return [(name, fa[name], fb[name]) for name in common]


def metric_fn(metric: str, y_channel: bool = False) -> Callable:
    """The per-image function for a metric name."""
    from pixelsmith.metrics import image

    if metric == "psnr":
        return lambda x, y: image.psnr(x, y, y_channel=y_channel)
    if y_channel:
        raise UserError("--y-channel applies to psnr only")
    if metric == "ssim":
        return image.ssim
    if metric == "ms-ssim":
        return image.ms_ssim
    raise UserError(f"unknown metric {metric!r}; choose from {', '.join(PAIR_METRICS)}")


def compare_files(
    a: str | Path, b: str | Path, metric: str, y_channel: bool = False
) -> list[tuple[str, float]]:
    """Per-pair values of a full-reference metric over matched image files."""
    fn = metric_fn(metric, y_channel)
    out = []
    for name, pa, pb in match_pairs(a, b):
        c = 1 if _channels(pa) == 1 and _channels(pb) == 1 else 3
        x, y = load_image(pa, c), load_image(pb, c)
        if x.shape != y.shape:
            raise UserError(
                f"{pa} is {x.shape[-1]}x{x.shape[-2]} but {pb} is {y.shape[-1]}x{y.shape[-2]}; "
                "full-reference metrics need images of one size"
            )
        out.append((name, float(fn(x, y).reshape(-1)[0])))
    return out
