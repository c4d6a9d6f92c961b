"""Watermark benchmark: pixelsmith's mark beside invisible-watermark 0.2.0 (dwtDct, dwtDctSvd and
its RivaGAN on ONNX Runtime), the same photos through the same attacks, in one run.

Photos: the 12 hold-out photos (`holdout_photos()`; grey ones repeated to RGB) at their own
sizes (0.14 to 0.37 megapixels), or `--photos training:N`, N crops of 512 to 1024 pixels from the
Debian training photos (the set the method was tuned on). Every method marks every photo once;
each attack is applied to the marked photo as an 8-bit RGB image (the way a file would carry it),
then each method reads it back.

Detection at a false-positive rate of 1e-6: pixelsmith's detector gives a p-value (the binomial
tail of its 64 key bits); invisible-watermark's methods give bits only, so they are held to the
same rule on their 32 bits, as if the message were the key (at least 30 of 32 must match).
Bit accuracy is over every bit a method carries (pixelsmith: 64 key bits + a 32-bit message).

Also: PSNR and SSIM of the marked photos against the originals (8-bit, RGB), milliseconds per
megapixel to embed and to detect (medians over photos), and with `--unmarked N` the first
method's false positives on N unmarked photos and crops (pixelsmith or learned; the p-value's
promise: at most FPR x N expected).

    .venv/bin/python bench/watermark.py                              # the protocol, hold-out
    .venv/bin/python bench/watermark.py --photos training:24 --methods pixelsmith   # tuning set
    .venv/bin/python bench/watermark.py --unmarked 1000 --methods pixelsmith --attacks none
    .venv/bin/python bench/watermark.py --speed 512,1024,2048 --methods pixelsmith,dwtDct,rivaGan
    .venv/bin/python bench/watermark.py --methods learned --out bench/results/watermark_learned.json

`learned` is the learned mark (zoo:learned-watermark, 64 bits, docs/watermark_learned.md),
detected by the binomial tail of its bits against the random message it carries.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelsmith.data.photos import holdout_photos, training_photos  # noqa: E402
from pixelsmith.metrics.image import psnr, ssim  # noqa: E402
from pixelsmith.provenance import learned as lw  # noqa: E402
from pixelsmith.provenance import watermark as wm  # noqa: E402
from pixelsmith.provenance.keys import WatermarkKey  # noqa: E402

FPR = 1e-6
RESULTS = Path(__file__).parent / "results" / "watermark.json"


def to_tensor(im: Image.Image) -> torch.Tensor:
    """8-bit RGB image -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255


def to_image(x: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] -> 8-bit RGB image."""
    a = (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(a)


def _jpeg(q: int) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    return f


def _cv_jpeg(q: int) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        import cv2  # OpenCV's encoder subsamples chroma 4:2:0, as most cameras and sites do

        ok, buf = cv2.imencode(".jpg", np.array(im)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        return Image.fromarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])

    return f


def _resize(s: float) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        w, h = im.size
        small = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)
        return small.resize((w, h), Image.BICUBIC)

    return f


def _crop(area: float, offset: bool) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        w, h = im.size
        cw, ch = round(w * area**0.5), round(h * area**0.5)
        x0, y0 = ((w - cw) // 2 + 3, (h - ch) // 2 + 5) if offset else (0, 0)
        return im.crop((x0, y0, x0 + cw, y0 + ch))

    return f


def _enhance(kind: type, factor: float) -> Callable[[Image.Image], Image.Image]:
    return lambda im: kind(im).enhance(factor)


def _noise(sigma: float) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        rng = np.random.default_rng(0)
        a = np.array(im) / 255 + rng.normal(0, sigma, (im.size[1], im.size[0], 3))
        return Image.fromarray((a.clip(0, 1) * 255).round().astype(np.uint8))

    return f


def _combo(im: Image.Image) -> Image.Image:
    return _jpeg(80)(_enhance(ImageEnhance.Brightness, 1.5)(_crop(0.5, True)(im)))


def _regenerate(im: Image.Image) -> Image.Image:
    from pixelsmith import jobs

    return to_image(jobs.apply("denoise", to_tensor(im)))


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": lambda im: im,
    "jpeg-90": _jpeg(90),
    "jpeg-75": _jpeg(75),
    "jpeg-50": _jpeg(50),
    "cv-jpeg-90": _cv_jpeg(90),
    "cv-jpeg-75": _cv_jpeg(75),
    "cv-jpeg-50": _cv_jpeg(50),
    "resize-0.5": _resize(0.5),
    "resize-0.25": _resize(0.25),
    "crop-50": _crop(0.5, False),
    "crop-25": _crop(0.25, False),
    "crop-50-offset": _crop(0.5, True),
    "crop-25-offset": _crop(0.25, True),
    "rotate-5": lambda im: im.rotate(5, Image.BICUBIC),
    "brightness-1.5": _enhance(ImageEnhance.Brightness, 1.5),
    "contrast-1.5": _enhance(ImageEnhance.Contrast, 1.5),
    "saturation-1.5": _enhance(ImageEnhance.Color, 1.5),
    "noise-0.05": _noise(0.05),
    "blur-1": lambda im: im.filter(ImageFilter.GaussianBlur(1)),
    "combo": _combo,
    "regenerate-denoise": _regenerate,
}
REPORTED_ONLY = ("rotate-5", "regenerate-denoise")  # the target excludes these rows


class Pixelsmith:
    """pixelsmith's keyed spread-spectrum mark: 64 key bits and a 32-bit message."""

    name = "pixelsmith"
    bits = 96

    def __init__(self, seed: int) -> None:
        self.key = WatermarkKey(np.random.default_rng(seed).bytes(32), message_bits=32)
        self.message = b"pxsm"

    def embed(self, im: Image.Image) -> Image.Image:
        return to_image(wm.embed(to_tensor(im), self.key, self.message))

    def read(self, im: Image.Image) -> tuple[bool, float]:
        """(detected at FPR, bit accuracy over every carried bit)."""
        d = wm.detect(to_tensor(im), self.key, FPR, expect=self.message)
        n, m = self.key.key_bits, self.key.message_bits
        return d.detected, (d.matched + d.message_bit_accuracy * m) / (n + m)


class Learned:
    """pixelsmith's learned mark (zoo:learned-watermark): 64 random bits, detected by the
    binomial tail of the bits that match them."""

    name = "learned"
    bits = lw.MESSAGE_BITS

    def __init__(self, seed: int) -> None:
        self.model = lw.load_learned()
        self.message = lw.random_bits(seed, self.model.bits)

    def embed(self, im: Image.Image) -> Image.Image:
        return to_image(lw.embed(to_tensor(im), self.message, model=self.model))

    def read(self, im: Image.Image) -> tuple[bool, float]:
        d = lw.detect(to_tensor(im), self.message, FPR, model=self.model)
        return d.detected, d.bit_accuracy


def make_method(name: str, seed: int):  # noqa: ANN201
    """A method of the bench by its --methods name."""
    if name == "pixelsmith":
        return Pixelsmith(seed)
    if name == "learned":
        return Learned(seed)
    return InvisibleWatermark(name, seed)


class InvisibleWatermark:
    """invisible-watermark 0.2.0's methods on a 32-bit message (BGR uint8 arrays, as it takes)."""

    bits = 32

    def __init__(self, method: str, seed: int) -> None:
        from imwatermark import WatermarkDecoder, WatermarkEncoder

        self.name, self.method = f"imwatermark-{method}", method
        self.message = np.random.default_rng(seed).integers(0, 2, 32).tolist()
        self.enc = WatermarkEncoder()
        self.enc.set_watermark("bits", self.message)
        self.dec = WatermarkDecoder("bits", 32)
        if method == "rivaGan":
            WatermarkEncoder.loadModel()
            WatermarkDecoder.loadModel()
        self.need = wm.matches_needed(32, FPR)

    def embed(self, im: Image.Image) -> Image.Image:
        out = self.enc.encode(np.array(im)[:, :, ::-1].copy(), self.method)
        return Image.fromarray(out[:, :, ::-1].copy())

    def read(self, im: Image.Image) -> tuple[bool, float]:
        a = np.array(im)[:, :, ::-1].copy()
        try:
            bits = np.asarray(self.dec.decode(a, self.method), dtype=int)
        except Exception:  # noqa: BLE001 - its decoders fail outright on some sizes
            return False, 0.0
        matched = int(np.sum(bits == np.asarray(self.message)))
        return matched >= self.need, matched / 32


def bench_photos(spec: str) -> list[tuple[str, Image.Image]]:
    """The photos a run uses: the hold-out set, or crops of the training photos."""
    if spec == "holdout":
        return [(n, Image.open(p).convert("RGB")) for n, p in holdout_photos().items()]
    if spec.startswith("training:"):
        count = int(spec.split(":")[1])
        rng = np.random.default_rng(1)
        paths = training_photos()
        out = []
        for i in range(count):
            im = Image.open(paths[i % len(paths)]).convert("RGB")
            side = int(rng.integers(512, 1025))
            w, h = im.size
            if min(w, h) > side:
                x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
                im = im.crop((x0, y0, x0 + side, y0 + int(side * 0.75)))
            out.append((f"training-{i}", im))
        return out
    raise SystemExit(f"--photos must be holdout or training:N, not {spec}")


def run_method(method, photos, attacks: list[str]) -> dict:  # noqa: ANN001
    """Mark every photo, attack it every way, read it back; the method's table."""
    rows = {a: {"detected": [], "bit_accuracy": []} for a in attacks}
    quality = {"psnr": [], "ssim": [], "embed_ms_per_mp": [], "detect_ms_per_mp": []}
    for name, im in photos:
        mp = im.size[0] * im.size[1] / 1e6
        t = time.perf_counter()
        marked = method.embed(im)
        quality["embed_ms_per_mp"].append(1000 * (time.perf_counter() - t) / mp)
        x, y = to_tensor(im)[None], to_tensor(marked)[None]
        quality["psnr"].append(float(psnr(x, y)[0]))
        quality["ssim"].append(float(ssim(x, y)[0]))
        for a in attacks:
            attacked = ATTACKS[a](marked)
            t = time.perf_counter()
            found, acc = method.read(attacked)
            if a == "none":
                quality["detect_ms_per_mp"].append(1000 * (time.perf_counter() - t) / mp)
            rows[a]["detected"].append(found)
            rows[a]["bit_accuracy"].append(acc)
        print(f"  {method.name} {name}: PSNR {quality['psnr'][-1]:.2f} dB", file=sys.stderr)
    table = {
        a: {
            "detection_rate": float(np.mean(r["detected"])),
            "bit_accuracy": float(np.mean(r["bit_accuracy"])),
            "worst_bit_accuracy": float(np.min(r["bit_accuracy"])),
        }
        for a, r in rows.items()
    }
    summary = {
        "bits": method.bits,
        "psnr_mean": float(np.mean(quality["psnr"])),
        "psnr_min": float(np.min(quality["psnr"])),
        "ssim_mean": float(np.mean(quality["ssim"])),
        "embed_ms_per_mp": float(np.median(quality["embed_ms_per_mp"])),
        "detect_ms_per_mp": float(np.median(quality["detect_ms_per_mp"]))
        if quality["detect_ms_per_mp"]
        else None,
    }
    return {"summary": summary, "attacks": table}


def unmarked_check(count: int, seed: int, method: str = "pixelsmith") -> dict:
    """A detector on unmarked training photos and crops of them, one key (pixelsmith) or one
    random message (learned) each."""
    rng = np.random.default_rng(seed)
    model = lw.load_learned() if method == "learned" else None
    paths = training_photos()
    ps = []
    for i in range(count):
        im = Image.open(paths[i % len(paths)]).convert("RGB")
        w, h = im.size
        cw = int(rng.integers(min(128, w), min(w, 1024) + 1))
        ch = int(rng.integers(min(128, h), min(h, 1024) + 1))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = to_tensor(im.crop((x0, y0, x0 + cw, y0 + ch)))
        if model is not None:
            message = lw.random_bits(int(rng.integers(2**31)), model.bits)
            ps.append(lw.detect(crop, message, model=model).p_value)
        else:
            key = WatermarkKey(rng.bytes(32), message_bits=32)
            ps.append(wm.detect(crop, key).p_value)
    ps = np.array(ps)
    return {
        "n": count,
        "false_positives_at_1e-6": int(np.sum(ps <= FPR)),
        "share_p_below": {str(t): float(np.mean(ps <= t)) for t in (0.5, 0.1, 0.01, 0.001)},
    }


def speed(sides: list[int], methods: list[str], seed: int) -> dict:
    """Milliseconds per megapixel to embed and to detect, in memory (no file conversions), on
    one training photo resized to each height (4:3); the best of 3 calls after a warm-up."""
    photo = Image.open(training_photos()[0]).convert("RGB")
    out: dict = {}
    for m in methods:
        method = make_method(m, seed)
        rows = {}
        for side in sides:
            im = photo.resize((side * 4 // 3, side), Image.BICUBIC)
            mp = im.size[0] * im.size[1] / 1e6
            if m == "pixelsmith":
                do_embed = partial(wm.embed, to_tensor(im), method.key, method.message)
                do_detect = partial(wm.detect, do_embed(), method.key)
            elif m == "learned":
                do_embed = partial(lw.embed, to_tensor(im), method.message, model=method.model)
                do_detect = partial(lw.detect, do_embed(), method.message, model=method.model)
            else:
                bgr = np.array(im)[:, :, ::-1].copy()
                do_embed = partial(method.enc.encode, bgr, method.method)
                do_detect = partial(method.dec.decode, do_embed(), method.method)
            times = {}
            for name, f in (("embed", do_embed), ("detect", do_detect)):
                f()
                best = min(_timed(f) for _ in range(3))
                times[f"{name}_ms_per_mp"] = 1000 * best / mp
            rows[f"{mp:.2f}MP"] = times
            print(f"speed {method.name} {mp:.2f} MP: embed {times['embed_ms_per_mp']:.0f}, "
                  f"detect {times['detect_ms_per_mp']:.0f} ms/MP", file=sys.stderr)  # fmt: skip
        out[method.name] = rows
    return out


def _timed(f: Callable[[], object]) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", default="holdout")
    ap.add_argument("--methods", default="pixelsmith,dwtDct,dwtDctSvd,rivaGan")
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--unmarked", type=int, default=0, help="unmarked photos for the FPR check")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed", default="", help="heights (e.g. 512,1024,2048): time in memory only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help=f"JSON (default {RESULTS} for holdout)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.speed:
        sides = [int(v) for v in args.speed.split(",")]
        report = {
            "command": "python bench/watermark.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
            "speed": speed(sides, args.methods.split(","), args.seed),
        }
        out = args.out or RESULTS.with_name("watermark_speed.json")
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {out}", file=sys.stderr)
        return
    attacks = args.attacks.split(",")
    photos = bench_photos(args.photos)
    results: dict = {}
    for m in args.methods.split(","):
        method = make_method(m, args.seed)
        results[method.name] = run_method(method, photos, attacks)
    report = {
        "command": "python bench/watermark.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
        "photos": args.photos,
        "photo_count": len(photos),
        "fpr": FPR,
        "methods": results,
    }
    if args.unmarked:
        first = args.methods.split(",")[0]
        report["unmarked"] = unmarked_check(args.unmarked, args.seed + 1, first)
        report["unmarked"]["method"] = first
    names = list(results)
    print(f"{'attack':20s}" + "".join(f"{n[:22]:>24s}" for n in names))
    for a in attacks:
        cells = [results[n]["attacks"][a] for n in names]
        tag = " (reported)" if a in REPORTED_ONLY else ""
        print(
            f"{a + tag:20s}"
            + "".join(
                f"{c['detection_rate']:>11.2f} det {c['bit_accuracy']:.3f} bit" for c in cells
            )
        )
    for n in names:
        s = results[n]["summary"]
        print(
            f"{n}: {s['bits']} bits, PSNR {s['psnr_mean']:.2f} (min {s['psnr_min']:.2f}) dB, "
            f"SSIM {s['ssim_mean']:.4f}, embed {s['embed_ms_per_mp']:.0f} ms/MP, "
            f"detect {s['detect_ms_per_mp']:.0f} ms/MP"
        )
    if "unmarked" in report:
        print("unmarked:", json.dumps(report["unmarked"]))
    out = args.out or (RESULTS if args.photos == "holdout" else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
