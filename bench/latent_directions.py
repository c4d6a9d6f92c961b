"""Do label directions change the class and keep the rest? Fashion-MNIST GAN (z) and StyleGAN (W).

    python bench/latent_directions.py [--quick] [--models zoo:fmnist-gan,RUN] [--real 16]

For each model and class pair (sneaker -> ankle boot, shirt -> T-shirt/top, pullover -> coat) and
each direction kind (class-mean difference, logistic-regression normal; `pixelsmith.edit.latent.
directions`), found from 2,000 prior samples labelled by the shipped Fashion-MNIST classifier
(seed 0): held-out samples (seed 1) that the classifier calls the source class are moved by
strengths 0, 1, 2, 3 (in standard deviations of the codes' projection on the direction), and
scored with the same classifier (mean target / source probability, share now called the target)
and against their own strength-0 image (SSIM, pixel L1). The anchor for "the rest stays": the
SSIM between each original and a random sample of the target class (what swapping the image for
another would score). With `--real N`: N Fashion-MNIST test images of the source class, inverted
into the model (`pixelsmith.edit.latent.invert`, encoder start + 200 steps), moved the same way.

Caveat: the classifier that labels the samples also scores the result, so the target probability
measures what that network sees, not what a person would say; the figures show the images.

Prints a table and writes bench/results/latent_directions.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from pixelsmith.edit.latent import latent_space
from pixelsmith.edit.latent.directions import (
    apply,
    base_space,
    label_direction,
    label_images,
    shipped_labeller,
)
from pixelsmith.generate import load_model
from pixelsmith.metrics.image import ssim

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [("Sneaker", "Ankle boot"), ("Shirt", "T-shirt/top"), ("Pullover", "Coat")]
STRENGTHS = [0.0, 1.0, 2.0, 3.0]


def default_models() -> list[str]:
    """The two shipped Fashion-MNIST generators."""
    return ["zoo:fmnist-gan", "zoo:fmnist-stylegan"]


def _scores(space, d, codes, lab, a: int, b: int, originals) -> list[dict]:
    """Classifier probabilities and closeness to the originals at each strength."""
    rows = []
    for s in STRENGTHS:
        images = space.images(apply(codes, d, s))
        p = label_images(lab.classify, images)
        rows.append(
            {
                "strength": s,
                "p_target": float(p[:, b].mean()),
                "p_source": float(p[:, a].mean()),
                "called_target": float((p.argmax(1) == b).float().mean()),
                "ssim_to_original": float(ssim(images, originals).mean()),
                "l1_to_original": float((images - originals).abs().mean()),
            }
        )
    return rows


def run_model(
    spec: str, pairs, n_find: int, n_test: int, keep: int, real: int, steps: int, start: str
) -> list[dict]:
    """The rows of one model: each pair, each method, sampled (and real) images moved."""
    model = load_model(spec)
    space = latent_space(model, "w" if model.name == "stylegan" else None)
    base = base_space(space)
    lab = shipped_labeller(space)
    print(f"{spec}: {model.name}, directions in {base.kind}", file=sys.stderr)
    test_codes = base.random(n_test, seed=1).cpu()
    test_images = base.images(test_codes)
    test_p = label_images(lab.classify, test_images)
    called = test_p.argmax(1)
    g = torch.Generator().manual_seed(2)
    results = []
    real_set = None
    if real:
        from pixelsmith.data.sources import load_images

        real_set = load_images("fashion-mnist", split="test")
    for src, dst in pairs:
        a, b = lab.class_id(src), lab.class_id(dst)
        pick = torch.nonzero(called == a).flatten()[:keep]
        others = torch.nonzero(called == b).flatten()
        if len(pick) == 0 or len(others) == 0:
            print(f"  {src} -> {dst}: no held-out sample of one class; skipped", file=sys.stderr)
            continue
        originals = test_images[pick]
        swap = test_images[others[torch.randint(len(others), (len(pick),), generator=g)]]
        anchor = float(ssim(swap, originals).mean())
        inverted = None
        if real_set is not None:
            from pixelsmith.edit.latent.invert import invert

            idx = torch.nonzero(real_set.labels == a).flatten()[:real]
            target = real_set.as_float()[idx]
            t0 = time.perf_counter()
            res = invert(base, target, steps=steps, start=start, progress=None)
            inverted = {
                "codes": res.codes,
                "images": res.images,
                "psnr": float(res.psnr.mean()),
                "ssim": float(res.ssim.mean()),
                "seconds": time.perf_counter() - t0,
            }
        for method in ("mean", "linear"):
            t0 = time.perf_counter()
            d = label_direction(space, a, b, method, n_find, seed=0, labeller=lab)
            found_s = time.perf_counter() - t0
            row = {
                "model": spec,
                "model_payload_sha256": model.manifest.get("payload_sha256"),
                "family": model.name,
                "space": base.kind,
                "pair": f"{src} -> {dst}",
                "method": method,
                "find_seconds": round(found_s, 2),
                "direction": {"scale": d.scale, **d.info},
                "samples_moved": len(pick),
                "anchor_ssim_random_target_sample": anchor,
                "strengths": _scores(
                    base, d, test_codes[pick].to(base.device), lab, a, b, originals
                ),
            }
            if inverted is not None:
                rec = inverted["images"]
                row["real"] = {
                    "images": len(rec),
                    "inversion_psnr": inverted["psnr"],
                    "inversion_ssim": inverted["ssim"],
                    "inversion_seconds": round(inverted["seconds"], 1),
                    "strengths": _scores(
                        base, d, inverted["codes"].to(base.device), lab, a, b, rec
                    ),
                }
            results.append(row)
            print(f"  {row['pair']} ({method}) done", file=sys.stderr)
    return results


def table(results: list[dict]) -> str:
    head = (
        "| model | pair | method | strength | p(target) | p(source) | called target | SSIM | L1 |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in results:
        name = "StyleGAN (W)" if r["family"] == "stylegan" else "DCGAN (z)"
        for arms, tag in ((r["strengths"], ""), (r.get("real", {}).get("strengths", []), " real")):
            for s in arms:
                lines.append(
                    f"| {name}{tag} | {r['pair']} | {r['method']} | {s['strength']:g} | "
                    f"{s['p_target']:.3f} | {s['p_source']:.3f} | {s['called_target']:.2f} | "
                    f"{s['ssim_to_original']:.3f} | {s['l1_to_original']:.3f} |"
                )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one pair, fewer samples (a smoke run)")
    p.add_argument("--models", help="comma list of runs / checkpoints / zoo:NAME")
    p.add_argument("--real", type=int, default=16, help="real test images per pair (0: none)")
    p.add_argument("--steps", type=int, default=200, help="inversion steps for --real")
    p.add_argument("--out", default=str(ROOT / "bench/results/latent_directions.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    models = args.models.split(",") if args.models else default_models()
    pairs = PAIRS[:1] if args.quick else PAIRS
    n_find, n_test, keep = (500, 500, 16) if args.quick else (2000, 2000, 64)
    real = min(args.real, 4) if args.quick else args.real
    steps = min(args.steps, 50) if args.quick else args.steps
    start = "mean" if args.quick else "encoder"  # quick: no encoder to train
    t0 = time.perf_counter()
    results = []
    for spec in models:
        results += run_model(spec, pairs, n_find, n_test, keep, real, steps, start)
    print(table(results))
    card = {
        "benchmark": "latent_directions",
        "quick": args.quick,
        "protocol": {
            "classifier": "pixelsmith fmnist-cnn-v1 (shipped; labels the samples and scores)",
            "find": f"{n_find} prior samples, seed 0, argmax labels",
            "held_out": f"{n_test} prior samples, seed 1; up to {keep} called the source class",
            "strength_unit": "std of the finding samples' projection on the unit direction",
            "ssim": "pixelsmith.metrics.image.ssim (Gaussian 11x11, sigma 1.5) to strength 0",
            "anchor": "SSIM of each original to a random held-out sample called the target",
            "real": f"{real} Fashion-MNIST test images of the source class, inverted "
            f"({steps} steps, {start} start), scored against their reconstructions",
        },
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
        "seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
