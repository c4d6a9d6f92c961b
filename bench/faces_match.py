"""How well the LBPH face matcher (pixelsmith.faces.match) tells faces apart, on lfw_subset.

scikit-image's `lfw_subset()` holds 100 face crops and 100 non-face crops, 25x25 grey, with no
identity labels, so true identity matching (two photos of one person) cannot be measured here.
The protocol measures what the identity check of anonymisation needs:

- genuine pairs: a face crop vs a re-captured copy of itself (random small rotation, scale and
  shift, brightness/contrast/gamma, Gaussian noise, JPEG), `--copies` per face, at two strengths;
- impostor pairs: a re-captured copy of face i vs the original face j, for every i != j;
- verification: ROC AUC (Mann-Whitney, ties 1/2), EER, the threshold at 1% FAR (99th
  percentile of the impostor similarities) and the true-accept rate there;
- anonymisation-like edits (blur, pixelation, both relative to the crop width; a flat fill):
  mean similarity to the original and the share still above the 1% FAR threshold;
- faces vs non-faces: each crop's similarity to the mean face descriptor (leave-one-out for
  faces), as a ROC AUC;
- repeated identities: the most similar distinct face pairs by LBPH and by pixel correlation,
  written as a montage for a person to look at (`--montage`); and `LOOKALIKE`, crops that look
  like one person by eye (unverified: there are no labels), with the percentile of their
  similarities among all distinct pairs (0.5 = no better than chance).

The default settings (64x64, 7x7 grid, radius 2) were chosen beside the variants printed here,
on these same crops, so the default's row is mildly optimistic.

    .venv/bin/python bench/faces_match.py            # ~2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import io
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelsmith.faces.match import FaceMatcher, similarity_matrix  # noqa: E402

# Faces 0, 73, 90 and 97 look by eye like one man (plausibly George W. Bush, LFW's most
# frequent identity); nothing in the data confirms it.
LOOKALIKE = (0, 73, 90, 97)

STRENGTHS = {
    # rotation deg, scale +-, shift px (of 25), brightness +-, contrast +-, gamma +-, noise
    # sigma max (0-255), JPEG quality range
    "mild": dict(rot=3, scale=0.03, shift=0.5, bright=0.05, contrast=0.1, gamma=0.1, noise=2,
                 jpeg=(80, 95)),
    "strong": dict(rot=8, scale=0.08, shift=1.5, bright=0.12, contrast=0.25, gamma=0.25,
                   noise=6, jpeg=(40, 70)),
}  # fmt: skip


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    arr = (x[0].clamp(0, 1) * 255).round().byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, format="JPEG", quality=quality)
    back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"), dtype=np.float32)
    return torch.from_numpy(back / 255)[None]


def recapture(x: torch.Tensor, gen: torch.Generator, s: dict) -> torch.Tensor:
    """A (1, H, W) crop as another capture of the same photo would give it."""

    def u(a: float) -> float:
        return float((torch.rand((), generator=gen) * 2 - 1) * a)

    h, w = x.shape[1:]
    ang = math.radians(u(s["rot"]))
    sc = 1 + u(s["scale"])
    tx, ty = u(s["shift"]) * 2 / w, u(s["shift"]) * 2 / h
    theta = torch.tensor(
        [
            [math.cos(ang) / sc, -math.sin(ang) / sc, tx],
            [math.sin(ang) / sc, math.cos(ang) / sc, ty],
        ]
    )[None]
    grid = F.affine_grid(theta, [1, 1, h, w], align_corners=False)
    y = F.grid_sample(
        x[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )[0]
    mean = y.mean()
    y = (y - mean) * (1 + u(s["contrast"])) + mean + u(s["bright"])
    y = y.clamp(0, 1) ** math.exp(u(s["gamma"]))
    y = y + torch.randn(y.shape, generator=gen) * float(torch.rand((), generator=gen)) * (
        s["noise"] / 255
    )
    lo, hi = s["jpeg"]
    q = int(lo + torch.randint(0, hi - lo + 1, (), generator=gen))
    return _jpeg(y.clamp(0, 1), q)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1.0) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    y = F.pad(x[None], (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return F.conv2d(y, k.view(1, 1, -1, 1))[0]


def pixelate(x: torch.Tensor, block: int) -> torch.Tensor:
    h, w = x.shape[1:]
    small = F.interpolate(x[None], (math.ceil(h / block), math.ceil(w / block)), mode="area")
    return F.interpolate(small, (h, w), mode="nearest")[0]


def auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """P(genuine > impostor) + P(tie) / 2, exactly (Mann-Whitney U over all pairs)."""
    imp = np.sort(impostor)
    below = np.searchsorted(imp, genuine, side="left")
    upto = np.searchsorted(imp, genuine, side="right")
    return float((below + 0.5 * (upto - below)).sum() / (len(genuine) * len(imp)))


def eer(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """The equal error rate and its threshold (accept when similarity >= threshold)."""
    best = (2.0, 0.0)
    for t in np.unique(np.concatenate([genuine, impostor])):
        far = float((impostor >= t).mean())
        frr = float((genuine < t).mean())
        if abs(far - frr) < best[0]:
            best = (abs(far - frr), t, (far + frr) / 2)  # type: ignore[assignment]
    return best[2], float(best[1])  # type: ignore[misc]


def verification(genuine: np.ndarray, impostor: np.ndarray) -> dict:
    thr = float(np.quantile(impostor, 0.99, method="higher"))
    e, et = eer(genuine, impostor)
    return {
        "pairs_genuine": len(genuine),
        "pairs_impostor": len(impostor),
        "auc": round(auc(genuine, impostor), 4),
        "eer": round(e, 4),
        "eer_threshold": round(et, 4),
        "threshold_far_1pct": round(thr, 4),
        "far_at_threshold": round(float((impostor > thr).mean()), 4),
        "tar_at_far_1pct": round(float((genuine > thr).mean()), 4),
        "genuine_mean": round(float(genuine.mean()), 4),
        "impostor_mean": round(float(impostor.mean()), 4),
        "impostor_max": round(float(impostor.max()), 4),
    }


def run_variant(m: FaceMatcher, faces: torch.Tensor, copies: int, seed: int) -> dict:
    n = len(faces)
    ref = m.embed(faces)
    off = ~torch.eye(n, dtype=torch.bool)
    out = {}
    for name, s in STRENGTHS.items():
        gen = torch.Generator().manual_seed(seed)
        gen_scores, imp_scores = [], []
        for _ in range(copies):
            recap = torch.stack([recapture(f, gen, s) for f in faces])
            sim = similarity_matrix(m.embed(recap), ref)
            gen_scores.append(sim.diagonal())
            imp_scores.append(sim[off])
        out[name] = verification(torch.cat(gen_scores).numpy(), torch.cat(imp_scores).numpy())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=5, help="re-captures per face and strength")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/faces_match.json")
    ap.add_argument("--montage", default="", help="write the most similar pairs as a PNG here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from skimage.data import lfw_subset

    data = torch.from_numpy(lfw_subset()).float()[:, None]  # (200, 1, 25, 25)
    faces, nonfaces = data[:100], data[100:]
    m = FaceMatcher()
    t0 = time.perf_counter()
    ref = m.embed(faces)
    ms_per_crop = (time.perf_counter() - t0) / len(faces) * 1000

    variants = {
        "default (64px, 7x7, r=2)": FaceMatcher(),
        "r=1": FaceMatcher(radius=1),
        "8x8 grid": FaceMatcher(grid=8),
        "32px, 4x4": FaceMatcher(size=32, grid=4),
    }
    results = {name: run_variant(v, faces, args.copies, args.seed) for name, v in variants.items()}

    # anonymisation-like edits, relative to the crop width w = 25
    w = faces.shape[-1]
    thr = results["default (64px, 7x7, r=2)"]["mild"]["threshold_far_1pct"]
    edits = {
        "blur sigma 0.04w": lambda x: blur(x, 0.04 * w),
        "blur sigma 0.08w": lambda x: blur(x, 0.08 * w),
        "blur sigma 0.16w": lambda x: blur(x, 0.16 * w),
        "pixelate w/8 blocks": lambda x: pixelate(x, max(1, round(w / 8))),
        "pixelate w/5 blocks": lambda x: pixelate(x, max(1, round(w / 5))),
        "flat mean fill": lambda x: torch.full_like(x, float(x.mean())),
        "another face": None,
    }
    edit_rows = {}
    for name, fn in edits.items():
        if fn is None:
            other = faces.roll(1, 0)
            sims = similarity_matrix(m.embed(other), ref).diagonal()
        else:
            sims = similarity_matrix(m.embed(torch.stack([fn(f) for f in faces])), ref).diagonal()
        edit_rows[name] = {
            "mean": round(float(sims.mean()), 4),
            "max": round(float(sims.max()), 4),
            "above_threshold": round(float((sims > thr).float().mean()), 4),
        }

    # faces vs non-faces: similarity to the mean face descriptor (leave-one-out for faces)
    total = ref.sum(0)
    loo = (total[None] - ref) / (len(ref) - 1)
    face_scores = np.array(
        [similarity_matrix(ref[i : i + 1], loo[i : i + 1])[0, 0].item() for i in range(len(ref))]
    )
    nf = m.embed(nonfaces)
    nonface_scores = similarity_matrix(nf, (total / len(ref))[None])[:, 0].numpy()
    face_vs_non = {
        "auc": round(auc(face_scores, nonface_scores), 4),
        "face_mean": round(float(face_scores.mean()), 4),
        "nonface_mean": round(float(nonface_scores.mean()), 4),
    }

    # repeated identities: the closest distinct pairs, by LBPH and by pixel correlation
    sim = similarity_matrix(ref, ref)
    iu = torch.triu_indices(len(ref), len(ref), 1)
    pair_sims = sim[iu[0], iu[1]]
    flat = faces.reshape(len(faces), -1)
    z = (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True)
    ncc = (z @ z.T / flat.shape[1])[iu[0], iu[1]]
    top_lbph = pair_sims.argsort(descending=True)[:10]
    top_ncc = ncc.argsort(descending=True)[:10]
    pairs = {
        "by_lbph": [
            [int(iu[0, k]), int(iu[1, k]), round(float(pair_sims[k]), 4), round(float(ncc[k]), 4)]
            for k in top_lbph
        ],
        "by_pixel_correlation": [
            [int(iu[0, k]), int(iu[1, k]), round(float(pair_sims[k]), 4), round(float(ncc[k]), 4)]
            for k in top_ncc
        ],
        "columns": ["face i", "face j", "lbph similarity", "pixel correlation"],
    }
    look = []
    for a in range(len(LOOKALIKE)):
        for b in range(a + 1, len(LOOKALIKE)):
            i, j = LOOKALIKE[a], LOOKALIKE[b]
            v = float(sim[i, j])
            look.append([i, j, round(v, 4), round(float((pair_sims < v).float().mean()), 3)])
    pairs["lookalike_by_eye_unverified"] = {
        "faces": list(LOOKALIKE),
        "pairs": look,
        "columns": ["face i", "face j", "lbph similarity", "percentile among distinct pairs"],
        "mean_percentile": round(float(np.mean([p[3] for p in look])), 3),
    }
    if args.montage:
        rows = [torch.cat([faces[int(iu[0, k])], faces[int(iu[1, k])]], -1) for k in top_lbph]
        rows += [torch.cat([faces[int(iu[0, k])], faces[int(iu[1, k])]], -1) for k in top_ncc]
        img = torch.cat(
            [torch.cat(rows[:10], -2), torch.ones(1, 250, 4), torch.cat(rows[10:], -2)], -1
        )
        Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8), "L").resize(
            (img.shape[-1] * 4, img.shape[-2] * 4), Image.NEAREST
        ).save(args.montage)

    report = {
        "protocol": __doc__.split("\n\n")[1].strip(),
        "data": "skimage.data.lfw_subset(): 100 faces + 100 non-faces, 25x25 grey, no labels",
        "strengths": STRENGTHS,
        "copies_per_face": args.copies,
        "seed": args.seed,
        "settings": {"size": m.size, "grid": m.grid, "radius": m.radius, "points": m.points},
        "ms_per_crop_embed": round(ms_per_crop, 3),
        "threads": 1,
        "machine": platform.processor() or platform.machine(),
        "verification": results,
        "anonymisation_edits_vs_threshold": {"threshold": thr, **edit_rows},
        "faces_vs_nonfaces": face_vs_non,
        "closest_distinct_faces": pairs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")

    print(f"LBPH matcher on lfw_subset ({args.copies} re-captures per face per strength)")
    print(f"{'variant':26} {'strength':8} {'AUC':>7} {'EER':>7} {'thr@1%FAR':>10} {'TAR@1%':>7}")
    for name, r in results.items():
        for s, v in r.items():
            print(
                f"{name:26} {s:8} {v['auc']:7.4f} {v['eer']:7.4f} "
                f"{v['threshold_far_1pct']:10.4f} {v['tar_at_far_1pct']:7.4f}"
            )
    print(f"\nanonymisation-like edits (default, threshold {thr:.4f} = 1% FAR, mild):")
    for name, r in edit_rows.items():
        print(
            f"  {name:22} mean {r['mean']:.4f}  max {r['max']:.4f}  "
            f"above {r['above_threshold']:.2f}"
        )
    print(f"\nfaces vs non-faces (similarity to the mean face): AUC {face_vs_non['auc']:.4f}")
    print("closest distinct face pairs (i, j, lbph, pixel corr):", pairs["by_lbph"][:5])
    print("by pixel correlation:", pairs["by_pixel_correlation"][:5])
    print(
        f"look-alike faces {LOOKALIKE} (by eye, unverified): mean percentile "
        f"{pairs['lookalike_by_eye_unverified']['mean_percentile']} among distinct pairs"
    )
    print(f"embed: {ms_per_crop:.2f} ms per crop; wrote {args.out}")


if __name__ == "__main__":
    main()
