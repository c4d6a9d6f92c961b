"""Editing benchmark: classical methods and pixelsmith's restoration models side by side.

Every task runs on the 256x256 centre crops of the 12 hold-out photos (`holdout_photos()`, from
the scikit-image, scikit-learn and matplotlib wheels; never trained on), grey photos repeated to
RGB where a task is colour. Each table gives PSNR, SSIM, seconds per image and the issue's figure.

- sr2, sr4: the LR image is `degrade.bicubic_down` (modcrop, MATLAB bicubic, 8-bit). Rows:
  bicubic (`degrade.imresize` up, MATLAB's), Lanczos (Pillow LANCZOS), pixelsmith
  (`ops.super_resolve`). Outputs are clamped and rounded to 8 bits, then scored on the BT.601
  luma Y (MATLAB rgb2ycbcr) with `scale` border pixels shaved, PSNR and SSIM, as SR papers do.
  sr2 also times a 512x512 photo (astronaut) to 1024x1024, median of 3 after a warm-up; sr4
  also scores OpenCV's butterfly.jpg (Debian's opencv-doc) when it is installed.
- denoise: AWGN sigma 25 (`degrade.GaussianNoise`, unclipped), on the luma of every crop (grey)
  and on the RGB photos (colour). Rows: the noisy input (clipped to score it), scikit-image NLM
  (`estimate_sigma`, h = 0.8 sigma, fast mode, patch 5, distance 6), BM3D (`bm3d` package,
  non-commercial licence: used here only; sigma_psd = 25/255, `bm3d_rgb` for colour),
  pixelsmith blind (`ops.denoise`, sigma estimated) and with the known sigma 25.
- inpaint: one `masks_with_coverage` free-form mask per photo covering 20-30%; the hole pixels
  are zeroed before any method sees them. Rows: OpenCV Telea (radius 3), scikit-image
  biharmonic, pixelsmith's harmonic fill alone, pixelsmith learned. PSNR over the whole image
  and over the hole pixels only.
- enhance: `degrade.LowLight()` (gain 0.05-0.4, gamma 1-2.5, read noise 0-0.03). Rows: the dark
  input, each classical enhancer alone (`classical.ENHANCERS`, defaults; gamma automatic), the
  pair autocontrast then gamma, pixelsmith learned (`ops.enhance`).

`--holdout art` runs the tasks on the second hold-out instead (`pixelsmith.data.art`: paintings,
manuscript and print scans, an illustrated map, painted textures from Debian packages nothing
trains on; short side brought to 512 with LANCZOS, then the 256x256 centre crop): fetch it with
`sh scripts/get-art-holdout.sh DIR` and give `--art-root DIR` (or PIXELSMITH_ART_HOLDOUT=DIR).
Its SR x2 target (issue 22) is +1.5 dB PSNR-Y over Lanczos.

Models default to the shipped zoo ones (`zoo:sr-x2`, ...); `--model TASK=RUN` takes a run folder
(its newest checkpoint), a checkpoint or zoo:NAME for sr2, sr4, denoise (colour), denoise-grey,
inpaint or enhance. A missing model or package makes its row say so. Every degradation is
seeded per photo (seed + the photo's index in its hold-out), so `--quick`'s 3 photos get the same
inputs as in the full run.

    .venv/bin/python bench/editing.py                       # all tasks, 12 photos (BM3D: slow)
    .venv/bin/python bench/editing.py --quick --tasks sr2 --model sr2=/work/runs/00000-sr-x2-photos
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelsmith.data import degrade  # noqa: E402
from pixelsmith.data.art import art_crops  # noqa: E402
from pixelsmith.data.patches import centre_crop  # noqa: E402
from pixelsmith.data.photos import BUTTERFLY, HOLDOUT, holdout_photos  # noqa: E402
from pixelsmith.edit import classical, ops  # noqa: E402
from pixelsmith.errors import UserError  # noqa: E402
from pixelsmith.imageio import read_natural  # noqa: E402
from pixelsmith.metrics.image import psnr, ssim  # noqa: E402
from pixelsmith.utils.rng import BatchRandom  # noqa: E402
from pixelsmith.zoo import resolve  # noqa: E402

SIZE = 256
SIGMA = 25.0
COVERAGE = (0.2, 0.3)
TELEA_RADIUS = 3
NLM = {"patch_size": 5, "patch_distance": 6, "fast_mode": True}  # h = 0.8 * estimated sigma
TIME_PHOTO = "astronaut"
QUICK_IMAGES = 3
TASKS = ("sr2", "sr4", "denoise", "inpaint", "enhance")
MODEL_KEYS = ("sr2", "sr4", "denoise", "denoise-grey", "inpaint", "enhance")
# MATLAB rgb2ycbcr's Y for RGB in [0, 1] (16-235 scaled to 0-1), the SR papers' luma.
Y_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
PAIR = ("autocontrast", "gamma")
# The distributions whose versions the JSON records (the anchors' among them).
DISTRIBUTIONS = ("torch", "numpy", "pillow", "scikit-image", "opencv-python-headless", "bm3d")
SUMMARY_ORDER = ("sr2", "sr2-time", "sr4", "butterfly", "denoise-grey", "denoise-colour")
SUMMARY_ORDER += ("inpaint", "enhance")

# The issue's figure for each (table, row), shown beside the measured one.
ISSUE = {
    ("sr2", "bicubic"): "~32.7",
    ("sr2", "Lanczos"): "~33.2",
    ("sr2", "pixelsmith"): ">= 35.1",
    ("sr4", "bicubic"): "~29.0",
    ("sr4", "pixelsmith"): ">= 30.5",
    ("butterfly", "bicubic"): "~22.1 (Set5)",
    ("sr2-time", "pixelsmith"): "< 1 s",
    ("denoise-grey", "NLM"): "30.1",
    ("denoise-grey", "BM3D"): "31.5",
    ("denoise-grey", "pixelsmith blind"): ">= 31.0",
    ("denoise-colour", "BM3D"): "32.8",
    ("denoise-colour", "pixelsmith blind"): ">= 32.0",
    ("inpaint", "Telea"): "24.7 / 18.8",
    ("inpaint", "biharmonic"): "25.2 / 19.3",
    ("inpaint", "pixelsmith learned"): ">= 25.6 / 19.8",
    ("enhance", "pixelsmith learned"): ">= best classical + 3",
}


class Skip(Exception):
    """A row that cannot run here (a missing package or model); the message says why."""


@dataclass
class Case:
    """One test photo: the degraded input the methods see and the clean reference."""

    name: str
    inp: Tensor
    ref: Tensor
    mask: Tensor | None = None


Method = Callable[[Case], Tensor]
Scorer = Callable[[Tensor, Case], dict[str, float]]


@dataclass
class Row:
    """One method's scores and seconds per photo, or the note saying why it did not run."""

    method: str
    note: str = ""
    scores: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def mean(self, key: str) -> float | None:
        """The mean of a score (or of "seconds") over the photos; None if it did not run."""
        values = self.seconds if key == "seconds" else self.scores.get(key, [])
        return statistics.fmean(values) if values else None

    def to_json(self) -> dict:
        """Means, per-photo values and the note."""
        per = {
            img: {k: v[i] for k, v in {**self.scores, "seconds": self.seconds}.items()}
            for i, img in enumerate(self.images)
        }
        keys = [*self.scores, "seconds"]
        return {
            "method": self.method,
            "note": self.note,
            **{k: self.mean(k) for k in keys},
            "per_image": per,
        }


@dataclass
class Table:
    """A printed table: its rows, the score columns and the protocol in one line."""

    key: str
    title: str
    rows: list[Row]
    columns: tuple[tuple[str, str], ...] = (("psnr", "PSNR"), ("ssim", "SSIM"))
    protocol: str = ""

    def row(self, method: str) -> Row:
        """The row of a method."""
        return next(r for r in self.rows if r.method == method)


# ---------------------------------------------------------------------------------------------
# Photos and conversions


def load_crops(holdout: str = "photos", art_root: str | None = None) -> dict[str, np.ndarray]:
    """The hold-out's centre crops, uint8 (H, W, C) with C = 1 or 3, in the hold-out's order."""
    if holdout == "art":
        return art_crops(art_root, SIZE)
    out = {}
    for name, path in holdout_photos().items():
        arr, _ = read_natural(path)
        arr = arr[..., :-1] if arr.shape[2] in (2, 4) else arr
        out[name] = np.ascontiguousarray(centre_crop(arr, SIZE))
    return out


def read_photo(path: str | Path) -> np.ndarray:
    """A whole photo as uint8 (H, W, 3)."""
    arr, _ = read_natural(path)
    arr = arr[..., :-1] if arr.shape[2] in (2, 4) else arr
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def rgb(arr: np.ndarray) -> np.ndarray:
    """A uint8 (H, W, C) photo as RGB (grey repeated)."""
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def grey(arr: np.ndarray) -> np.ndarray:
    """A uint8 (H, W, C) photo as its Pillow luma, (H, W, 1)."""
    if arr.shape[2] == 1:
        return arr
    return np.asarray(Image.fromarray(arr).convert("L"))[..., None]


def to_tensor(arr: np.ndarray) -> Tensor:
    """uint8 or float (H, W[, C]) array to a float32 (1, C, H, W) tensor in [0, 1] (uint8 / 255)."""
    a = arr[..., None] if arr.ndim == 2 else arr
    x = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None]  # a writable copy
    return x.float() / 255 if a.dtype == np.uint8 else x.float()


def to_float(x: Tensor) -> np.ndarray:
    """(1, C, H, W) tensor to float64 (H, W) for grey or (H, W, 3)."""
    a = x[0].permute(1, 2, 0).double().numpy()
    return a[..., 0] if a.shape[2] == 1 else a


def to_uint8(x: Tensor) -> np.ndarray:
    """(1, C, H, W) tensor in [0, 1] to uint8 (H, W, C), rounded."""
    return torch.round(x[0].clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()


def quantize(x: Tensor) -> Tensor:
    """Clamped to [0, 1] and rounded to 8-bit levels, as a saved image would be."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def first(photos: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The first n photos (HOLDOUT order)."""
    return dict(list(photos.items())[:n])


ORDER: list[str] = list(HOLDOUT)  # the images of the hold-out in use (main sets it)


def seed_of(name: str, seed: int) -> int:
    """The photo's own seed: the base seed plus its index in the hold-out."""
    return seed + ORDER.index(name)


# ---------------------------------------------------------------------------------------------
# Running rows


def need(module: str, what: str, install: str) -> ModuleType:
    """Import an optional test-time package, or Skip with the line that says how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Skip(f"skipped: {what} needs {install}") from None


def model_or_skip(task: str, key: int, spec: str | None) -> str | None:
    """The model spec after loading it once (so timings exclude loading), or Skip if missing."""
    try:
        ops.restorer(task, spec, key)
    except UserError as e:
        if spec is None:  # the zoo's message up to its advice
            raise Skip(f"missing: {str(e).split('; ')[0]}") from None
        raise Skip(f"cannot use {spec}: {e}") from None
    return spec


def run_rows(
    cases: list[Case], makers: dict[str, Callable[[], Method]], score: Scorer
) -> list[Row]:
    """Each method on every case, timed and scored; a method that cannot run keeps its note."""
    rows = []
    for name, make in makers.items():
        row = Row(name)
        rows.append(row)
        try:
            fn = make()
            for case in cases:
                t0 = time.perf_counter()
                out = fn(case)
                row.seconds.append(time.perf_counter() - t0)
                row.images.append(case.name)
                for k, v in score(out, case).items():
                    row.scores.setdefault(k, []).append(v)
        except (Skip, UserError) as e:
            row.note = str(e) if isinstance(e, Skip) else f"failed: {e}"
            row.scores, row.seconds, row.images = {}, [], []
        print(f"  {name}: {row.note or 'done'}", flush=True)
    return rows


def score_plain(out: Tensor, case: Case) -> dict[str, float]:
    """PSNR and SSIM of the clamped output against the reference."""
    out = out.clamp(0, 1)
    return {"psnr": psnr(out, case.ref).item(), "ssim": ssim(out, case.ref).item()}


# ---------------------------------------------------------------------------------------------
# Super-resolution


def luma_y(x: Tensor) -> Tensor:
    """MATLAB rgb2ycbcr's Y of RGB (N, 3, H, W) in [0, 1], on the 0-1 scale."""
    w = x.new_tensor(Y_WEIGHTS).view(1, 3, 1, 1)
    return 16 / 255 + (x * w).sum(1, keepdim=True)


def shave(x: Tensor, border: int) -> Tensor:
    """x without `border` pixels on each side."""
    return x[..., border:-border, border:-border]


def sr_scorer(scale: int) -> Scorer:
    """PSNR-Y and SSIM-Y of the 8-bit output with `scale` border pixels shaved."""

    def score(out: Tensor, case: Case) -> dict[str, float]:
        a, b = shave(quantize(out), scale), shave(case.ref, scale)
        return {
            "psnr": psnr(a, b, y_channel=True).item(),
            "ssim": ssim(luma_y(a), luma_y(b)).item(),
        }

    return score


def lanczos(lr: Tensor, scale: int) -> Tensor:
    """Pillow's LANCZOS upscaling of an 8-bit image."""
    im = Image.fromarray(to_uint8(lr))
    return to_tensor(np.asarray(im.resize((im.width * scale, im.height * scale), Image.LANCZOS)))


def sr_makers(scale: int, spec: str | None) -> dict[str, Callable[[], Method]]:
    """bicubic, Lanczos and pixelsmith rows for one scale."""

    def ours() -> Method:
        m = model_or_skip("sr", scale, spec)
        return lambda c: ops.super_resolve(c.inp, scale, model=m)

    return {
        "bicubic": lambda: lambda c: degrade.imresize(c.inp, scale=scale),
        "Lanczos": lambda: lambda c: lanczos(c.inp, scale),
        "pixelsmith": ours,
    }


def sr_case(name: str, arr: np.ndarray, scale: int) -> Case:
    """The HR photo (modcropped) and its bicubic_down LR image."""
    hr = degrade.modcrop(to_tensor(rgb(arr)), scale)
    return Case(name, degrade.bicubic_down(hr, scale), hr)


def check_psnr_y(cases: list[Case], scale: int) -> dict[str, float] | None:
    """pixelsmith's PSNR-Y of the first photo's bicubic output against scikit-image's."""
    try:
        color, metrics = need("skimage.color", "", ""), need("skimage.metrics", "", "")
    except Skip:
        return None
    c = cases[0]
    out = quantize(degrade.imresize(c.inp, scale=scale))
    ours = sr_scorer(scale)(out, c)["psnr"]
    ya = color.rgb2ycbcr(to_float(shave(out, scale)))[..., 0]
    yb = color.rgb2ycbcr(to_float(shave(c.ref, scale)))[..., 0]
    theirs = float(metrics.peak_signal_noise_ratio(yb, ya, data_range=255))
    print(
        f"  PSNR-Y check on {c.name} bicubic x{scale}: pixelsmith {ours:.4f}, skimage {theirs:.4f}"
    )
    return {"image": c.name, "pixelsmith": ours, "skimage": theirs}


def time_sr2(spec: str | None, repeats: int) -> Table:
    """Seconds for a 512x512 photo to 1024x1024: bicubic and pixelsmith, median after a warm-up."""
    x = to_tensor(read_photo(holdout_photos((TIME_PHOTO,))[TIME_PHOTO]))
    rows = []
    for name, make in sr_makers(2, spec).items():
        if name == "Lanczos":
            continue
        row = Row(name)
        try:
            fn, case = make(), Case(TIME_PHOTO, x, x)
            fn(case)
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn(case)
                row.seconds.append(time.perf_counter() - t0)
            row.seconds = [statistics.median(row.seconds)]
            row.images = [TIME_PHOTO]
        except (Skip, UserError) as e:
            row.note = str(e)
        rows.append(row)
    shape = "x".join(map(str, x.shape[-2:]))
    title = f"SR x2 time, {TIME_PHOTO} {shape} -> x2, {torch.get_num_threads()} threads"
    protocol = f"median of {repeats} after one warm-up"
    return Table("sr2-time", title, rows, columns=(), protocol=protocol)


def task_sr(scale: int, crops: dict[str, np.ndarray], spec: str | None, quick: bool) -> list[Table]:
    """The SR tables for one scale (x2 adds the timing, x4 the butterfly)."""
    cases = [sr_case(n, a, scale) for n, a in crops.items()]
    check = check_psnr_y(cases, scale)
    protocol = f"bicubic_down x{scale}, 8-bit outputs, Y (BT.601) with {scale} pixels shaved"
    if check:
        protocol += (
            f"; PSNR-Y matches skimage ({check['pixelsmith']:.4f} vs {check['skimage']:.4f})"
        )
    title = f"SR x{scale}, PSNR-Y / SSIM-Y on {len(cases)} crops"
    tables = [
        Table(
            f"sr{scale}",
            title,
            run_rows(cases, sr_makers(scale, spec), sr_scorer(scale)),
            protocol=protocol,
        )
    ]
    if scale == 2:
        tables.append(time_sr2(spec, 1 if quick else 3))
    if scale == 4:
        tables.append(task_butterfly(spec))
    return tables


def task_butterfly(spec: str | None) -> Table:
    """OpenCV's butterfly.jpg (whole photo) at x4: bicubic and pixelsmith."""
    title = "SR x4 on opencv-doc's butterfly.jpg, PSNR-Y / SSIM-Y"
    print(" butterfly:")
    if not Path(BUTTERFLY).is_file():
        note = f"skipped: {BUTTERFLY} is missing (apt-get install opencv-doc)"
        print(f"  butterfly: {note}")
        return Table("butterfly", title, [Row("bicubic", note), Row("pixelsmith", note)])
    case = sr_case("butterfly", read_photo(BUTTERFLY), 4)
    makers = {k: v for k, v in sr_makers(4, spec).items() if k != "Lanczos"}
    return Table("butterfly", title, run_rows([case], makers, sr_scorer(4)), protocol=BUTTERFLY)


# ---------------------------------------------------------------------------------------------
# Denoising


def add_noise(x: Tensor, seed: int) -> Tensor:
    """x plus AWGN of sigma 25 (0-255 scale), unclipped, from the photo's own seed."""
    noisy, _ = degrade.GaussianNoise(sigma=(SIGMA, SIGMA))(x, BatchRandom(seed))
    return noisy


def nlm_method() -> Method:
    """scikit-image non-local means with its own sigma estimate, h = 0.8 sigma."""
    restoration = need("skimage.restoration", "NLM", "pip install scikit-image")

    def run(case: Case) -> Tensor:
        z = to_float(case.inp)
        axis = -1 if z.ndim == 3 else None
        s = float(restoration.estimate_sigma(z, channel_axis=axis, average_sigmas=True))
        out = restoration.denoise_nl_means(z, h=0.8 * s, sigma=s, channel_axis=axis, **NLM)
        return to_tensor(out.astype(np.float32))

    return run


def bm3d_method() -> Method:
    """BM3D with the true sigma (grey: bm3d, colour: bm3d_rgb)."""
    bm3d = need("bm3d", "BM3D", "pip install bm3d (non-commercial licence; bench only)")

    def run(case: Case) -> Tensor:
        z = to_float(case.inp)
        out = bm3d.bm3d(z, sigma_psd=SIGMA / 255) if z.ndim == 2 else bm3d.bm3d_rgb(z, SIGMA / 255)
        return to_tensor(np.asarray(out, np.float32).reshape(z.shape))

    return run


def denoise_makers(channels: int, spec: str | None) -> dict[str, Callable[[], Method]]:
    """noisy input, NLM, BM3D and pixelsmith blind and with the known sigma."""

    def ours(sigma: float | None) -> Callable[[], Method]:
        def make() -> Method:
            m = model_or_skip("denoise", channels, spec)
            return lambda c: ops.denoise(c.inp, sigma=sigma, model=m)

        return make

    return {
        "noisy input": lambda: lambda c: c.inp,
        "NLM": nlm_method,
        "BM3D": bm3d_method,
        "pixelsmith blind": ours(None),
        "pixelsmith sigma=25": ours(SIGMA),
    }


def task_denoise(
    crops: dict[str, np.ndarray], n: int, models: dict[str, str], seed: int
) -> list[Table]:
    """Grey (the luma of every crop) and colour (the RGB photos) denoising at sigma 25."""
    tables = []
    for key, channels in (("denoise-grey", 1), ("denoise-colour", 3)):
        if channels == 1:
            clean = {k: grey(a) for k, a in first(crops, n).items()}
        else:
            clean = first({k: a for k, a in crops.items() if a.shape[2] == 3}, n)
        cases = []
        for name, a in clean.items():
            x = to_tensor(a)
            cases.append(Case(name, add_noise(x, seed_of(name, seed)), x))
        spec = models.get(key if channels == 1 else "denoise")
        print(f" {key}:")
        rows = run_rows(cases, denoise_makers(channels, spec), score_plain)
        kind = "grey (luma)" if channels == 1 else "colour"
        title = f"Denoise sigma 25, {kind}, {len(cases)} crops"
        protocol = "AWGN sigma 25 unclipped (the noisy row is clipped to score it)"
        tables.append(Table(key, title, rows, protocol=protocol))
    return tables


# ---------------------------------------------------------------------------------------------
# Inpainting


def inpaint_scorer(out: Tensor, case: Case) -> dict[str, float]:
    """Whole-image PSNR, PSNR over the hole pixels only, and SSIM."""
    out = out.clamp(0, 1)
    hole = case.mask.expand_as(case.ref) > 0.5
    mse = (out - case.ref)[hole].double().square().mean().item()
    scores = score_plain(out, case)
    return {"psnr": scores["psnr"], "hole": 10 * math.log10(1 / mse), "ssim": scores["ssim"]}


def telea() -> Method:
    """OpenCV's Telea inpainting on the 8-bit image."""
    cv2 = need("cv2", "Telea", "pip install opencv-python-headless")
    flag = cv2.INPAINT_TELEA

    def run(case: Case) -> Tensor:
        mask = (case.mask[0, 0].numpy() > 0.5).astype(np.uint8)
        return to_tensor(cv2.inpaint(to_uint8(case.inp), mask, TELEA_RADIUS, flag))

    return run


def biharmonic() -> Method:
    """scikit-image's biharmonic inpainting, channels together."""
    restoration = need("skimage.restoration", "biharmonic", "pip install scikit-image")

    def run(case: Case) -> Tensor:
        mask = case.mask[0, 0].numpy() > 0.5
        out = restoration.inpaint_biharmonic(to_float(case.inp), mask, channel_axis=-1)
        return to_tensor(out.astype(np.float32))

    return run


def task_inpaint(crops: dict[str, np.ndarray], spec: str | None, seed: int) -> list[Table]:
    """25% free-form holes: Telea, biharmonic, harmonic fill, pixelsmith learned."""
    cases = []
    for n, a in crops.items():
        x = to_tensor(rgb(a))
        mask = degrade.masks_with_coverage(1, SIZE, SIZE, BatchRandom(seed_of(n, seed)), COVERAGE)
        cases.append(Case(n, x * (1 - mask), x, mask))

    def learned() -> Method:
        m = model_or_skip("inpaint", 3, spec)
        return lambda c: ops.inpaint(c.inp, c.mask, model=m)

    makers = {
        "Telea": telea,
        "biharmonic": biharmonic,
        "pixelsmith harmonic": lambda: lambda c: ops.inpaint(c.inp, c.mask, method="harmonic"),
        "pixelsmith learned": learned,
    }
    coverage = statistics.fmean(c.mask.mean().item() for c in cases)
    title = f"Inpaint, free-form masks {coverage:.1%} mean coverage, {len(cases)} crops"
    columns = (("psnr", "PSNR"), ("hole", "hole PSNR"), ("ssim", "SSIM"))
    protocol = "holes zeroed before every method; Telea radius 3; hole PSNR over hole pixels"
    return [Table("inpaint", title, run_rows(cases, makers, inpaint_scorer), columns, protocol)]


# ---------------------------------------------------------------------------------------------
# Enhancement


def task_enhance(crops: dict[str, np.ndarray], spec: str | None, seed: int) -> list[Table]:
    """Synthetic low light: the dark input, each classical enhancer, the best pair, learned."""
    cases = []
    for n, a in crops.items():
        x = to_tensor(rgb(a))
        cases.append(Case(n, degrade.LowLight()(x, BatchRandom(seed_of(n, seed))), x))

    def learned() -> Method:
        m = model_or_skip("enhance", 3, spec)
        return lambda c: ops.enhance(c.inp, ["learned"], model=m)

    def classic(names: tuple[str, ...]) -> Callable[[], Method]:
        return lambda: lambda c: classical.enhance_classical(c.inp, list(names))

    makers: dict[str, Callable[[], Method]] = {"dark input": lambda: lambda c: c.inp}
    makers |= {name: classic((name,)) for name in classical.ENHANCERS}
    makers["+".join(PAIR)] = classic(PAIR)
    makers["pixelsmith learned"] = learned
    title = f"Enhance, synthetic low light (LowLight defaults), {len(cases)} crops"
    rows = run_rows(cases, makers, score_plain)
    return [Table("enhance", title, rows, protocol="classical enhancers at their defaults")]


# ---------------------------------------------------------------------------------------------
# Reporting


def fmt(value: float | None, digits: int = 2) -> str:
    """A number, or '-' when there is none."""
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(t: Table) -> None:
    """One task's table: method, the score columns, seconds per image and the issue's figure."""
    print(f"\n{t.title}" + (f"\n  ({t.protocol})" if t.protocol else ""))
    head = f"{'method':<26}" + "".join(f"{h:>11}" for _, h in t.columns)
    print(head + f"{'s/image':>10}  issue")
    for r in t.rows:
        issue = ISSUE.get((t.key, r.method), "")
        if r.note:
            print(f"{r.method:<26}  {r.note}")
            continue
        cells = "".join(f"{fmt(r.mean(k), 4 if k == 'ssim' else 2):>11}" for k, _ in t.columns)
        print(f"{r.method:<26}{cells}{fmt(r.mean('seconds'), 3):>10}  {issue}")


def best(t: Table, methods: list[str], key: str) -> tuple[str, float | None]:
    """The best-scoring of the methods that ran (name, score), or ('-', None)."""
    ran = [(r.mean(key), r.method) for r in t.rows if r.method in methods and not r.note]
    if not ran:
        return "-", None
    value, name = max(ran)
    return name, value


def verdict(ours: float | None, target: float | None, higher: bool = True) -> str:
    """met / MISSED against a target, or why there is no verdict."""
    if ours is None or target is None:
        return "n/a"
    return "met" if (ours >= target if higher else ours < target) else "MISSED"


def summary_rows(tables: dict[str, Table], holdout: str = "photos") -> list[dict]:
    """The final summary: task, metric, best classical, pixelsmith, target and verdict."""
    if holdout == "art":  # issue 22's target on the second hold-out
        out = []
        if "sr2" in tables:
            _, value = best(tables["sr2"], ["Lanczos"], "psnr")
            target = None if value is None else value + 1.5
            mine = tables["sr2"].row("pixelsmith").mean("psnr")
            row = _summary("sr2", "gain +1.5", "Lanczos", value, mine, target, f">= {fmt(target)}")
            out.append(row)
        return out
    specs = [  # table, metric, score key, classical rows, pixelsmith row, target
        ("sr2", "PSNR-Y", "psnr", ["bicubic", "Lanczos"], "pixelsmith", 35.1),
        ("sr4", "PSNR-Y", "psnr", ["bicubic", "Lanczos"], "pixelsmith", 30.5),
        ("butterfly", "PSNR-Y", "psnr", ["bicubic"], "pixelsmith", None),
        ("denoise-grey", "PSNR", "psnr", ["NLM", "BM3D"], "pixelsmith blind", 31.0),
        ("denoise-colour", "PSNR", "psnr", ["NLM", "BM3D"], "pixelsmith blind", 32.0),
        ("inpaint", "PSNR", "psnr", ["Telea", "biharmonic", "pixelsmith harmonic"],
         "pixelsmith learned", 25.6),
        ("inpaint", "hole PSNR", "hole", ["Telea", "biharmonic", "pixelsmith harmonic"],
         "pixelsmith learned", 19.8),
    ]  # fmt: skip
    out = []
    for key, metric, score, classic, ours, target in specs:
        if key in tables:
            name, value = best(tables[key], classic, score)
            mine = tables[key].row(ours).mean(score)
            out.append(_summary(key, metric, name, value, mine, target, f">= {target}"))
    # The issue's figures came from easier images than these crops (bicubic x2 reaches 32.7 there,
    # about 30 here), so each target is also judged as the issue's margin over the same anchor,
    # measured in this run: e.g. SR x2 35.1 - 32.7 = 2.4 dB over bicubic.
    margins = [  # table, score key, anchor rows (best of), margin, pixelsmith row
        ("sr2", "psnr", ["bicubic"], 2.4, "pixelsmith"),
        ("sr4", "psnr", ["bicubic"], 1.5, "pixelsmith"),
        ("denoise-grey", "psnr", ["NLM"], 0.9, "pixelsmith blind"),
        ("denoise-colour", "psnr", ["BM3D"], -0.8, "pixelsmith blind"),
        ("inpaint", "psnr", ["Telea", "biharmonic"], 0.4, "pixelsmith learned"),
        ("inpaint", "hole", ["Telea", "biharmonic"], 0.5, "pixelsmith learned"),
    ]
    for key, score, anchors, margin, ours in margins:
        if key in tables:
            name, value = best(tables[key], anchors, score)
            target = None if value is None else value + margin
            mine = tables[key].row(ours).mean(score)
            label = f"{'hole ' if score == 'hole' else ''}gain {margin:+g}"
            out.append(_summary(key, label, name, value, mine, target, f">= {fmt(target)}"))
    if "sr2-time" in tables:
        t = tables["sr2-time"]
        base, mine = t.row("bicubic").mean("seconds"), t.row("pixelsmith").mean("seconds")
        out.append(_summary("sr2-time", "s (512x512)", "bicubic", base, mine, 1.0, "< 1", False))
    if "enhance" in tables:
        t = tables["enhance"]
        classic = [r.method for r in t.rows if r.method not in ("dark input", "pixelsmith learned")]
        name, value = best(t, classic, "psnr")
        target = None if value is None else value + 3
        mine = t.row("pixelsmith learned").mean("psnr")
        out.append(_summary("enhance", "PSNR", name, value, mine, target, f">= {fmt(target)}"))
    return sorted(out, key=lambda r: SUMMARY_ORDER.index(r["task"]))


def _summary(task, metric, name, value, mine, target, text, higher=True) -> dict:
    """One summary entry."""
    return {
        "task": task,
        "metric": metric,
        "classical": name,
        "classical_value": value,
        "pixelsmith": mine,
        "target": text if target is not None else "-",
        "status": verdict(mine, target, higher) if target is not None else "-",
    }


def print_summary(rows: list[dict], quick: bool) -> None:
    """The final table; quick runs are flagged as off-protocol."""
    print("\nSummary" + (" (--quick: 3 photos per task, not the protocol)" if quick else ""))
    print(
        f"{'task':<16}{'metric':<14}{'classical best':<30}{'pixelsmith':>11}{'target':>10}  status"
    )
    for r in rows:
        digits = 3 if r["task"] == "sr2-time" else 2
        classic = f"{r['classical']} {fmt(r['classical_value'], digits)}"
        mine = fmt(r["pixelsmith"], digits) if r["pixelsmith"] is not None else "missing"
        target = f"{r['target']:>10}"
        print(f"{r['task']:<16}{r['metric']:<14}{classic:<30}{mine:>11}{target}  {r['status']}")


def versions() -> dict[str, str]:
    """Versions of python, torch and the anchors' distributions that are installed."""
    out = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or the platform's word."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def model_files(models: dict[str, str]) -> dict[str, str]:
    """Each --model override with the checkpoint it resolves to now."""
    out = {}
    for key, spec in models.items():
        try:
            out[key] = f"{spec} -> {resolve(spec)}"
        except UserError as e:
            out[key] = f"{spec} ({e})"
    return out


# ---------------------------------------------------------------------------------------------
# Command line


def parse_models(items: list[str]) -> dict[str, str]:
    """--model TASK=RUN pairs to a dict, refusing unknown tasks."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in MODEL_KEYS or not value:
            raise SystemExit(
                f"--model {item!r}: give TASK=RUN with TASK one of {', '.join(MODEL_KEYS)}"
            )
        out[key] = value
    return out


def parse_tasks(text: str) -> list[str]:
    """--tasks as a list, refusing unknown ones."""
    tasks = [t for t in text.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise SystemExit(f"--tasks: unknown {unknown}; choose from {','.join(TASKS)}")
    return tasks


def run_task(task: str, crops: dict[str, np.ndarray], args: argparse.Namespace) -> list[Table]:
    """The tables of one task, on the first 3 photos with --quick."""
    models, n = args.models, QUICK_IMAGES if args.quick else len(crops)
    if task in ("sr2", "sr4"):
        return task_sr(int(task[-1]), first(crops, n), models.get(task), args.quick)
    if task == "denoise":
        return task_denoise(crops, n, models, args.seed)
    if task == "inpaint":
        return task_inpaint(first(crops, n), models.get("inpaint"), args.seed)
    return task_enhance(first(crops, n), models.get("enhance"), args.seed)


def main() -> None:
    """Run the chosen tasks, print their tables and the summary, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 photos per task, one timing run")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: " + ",".join(TASKS))
    what = "a run folder, checkpoint or zoo:NAME for " + ", ".join(MODEL_KEYS)
    ap.add_argument("--model", action="append", default=[], metavar="TASK=RUN", help=what)
    ap.add_argument("--json", default="bench/results/editing.json", help="where to write results")
    ap.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    ap.add_argument("--seed", type=int, default=0, help="base seed of the degradations")
    ap.add_argument("--holdout", choices=("photos", "art"), default="photos")
    ap.add_argument("--art-root", help="where scripts/get-art-holdout.sh unpacked the art")
    args = ap.parse_args()
    args.models, tasks = parse_models(args.model), parse_tasks(args.tasks)
    torch.set_num_threads(args.threads)
    with contextlib.suppress(ImportError):
        importlib.import_module("cv2").setNumThreads(args.threads)

    crops = load_crops(args.holdout, args.art_root)
    ORDER[:] = list(crops)
    started = time.time()
    tables: dict[str, Table] = {}
    for task in tasks:
        print(f"{task}:", flush=True)
        for t in run_task(task, crops, args):
            tables[t.key] = t
    for t in tables.values():
        print_table(t)
    summary = summary_rows(tables, args.holdout)
    print_summary(summary, args.quick)

    result = {
        "benchmark": "editing",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "quick": args.quick,
        "holdout": args.holdout,
        "threads": args.threads,
        "seed": args.seed,
        "cpu": cpu_name(),
        "versions": versions(),
        "models": model_files(args.models),
        "settings": {
            "crop": SIZE,
            "sigma": SIGMA,
            "nlm": {**NLM, "h": "0.8 * estimate_sigma"},
            "bm3d": "sigma_psd = sigma / 255; bm3d_rgb (opp colour space) for colour",
            "mask_coverage": COVERAGE,
            "telea_radius": TELEA_RADIUS,
            "low_light": "degrade.LowLight() defaults",
            "seeds": "seed + the image's index in its hold-out",
        },
        "tables": {
            k: {"title": t.title, "protocol": t.protocol, "rows": [r.to_json() for r in t.rows]}
            for k, t in tables.items()
        },
        "summary": summary,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
