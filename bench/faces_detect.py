"""Face detection benchmark: MTCNN, Haar and LBP on the faces that exist offline.

Protocol (every detector at its defaults: min size 20, MTCNN thresholds 0.6/0.7/0.7, pyramid
factor 0.709; Haar scale 1.1 with 5 neighbours; LBP scale 1.2 with 4 neighbours):

- photos: astronaut, camera (skimage) and grace_hopper (matplotlib) hold one face each; a
  detection is a true positive when its IoU with the hand-read box (`ONE_FACE`) is >= 0.3 (the
  detectors' boxes differ in how much forehead and chin they take) and every other detection is
  a false positive. chelsea (a cat), coffee and the textures brick, grass, gravel and rocket
  hold none: every detection there is a false positive.
- lfw_subset (skimage, 100 faces + 100 non-faces, 25x25 grey): each crop is enlarged x4 with
  bicubic (to 100x100, so a 20-pixel minimum face sees it) and padded by 50 pixels of its own
  edge pixels (replicate) on each side, giving 200x200 with the crop in (50, 50, 150, 150).
  Recall: the faces with a detection of IoU >= 0.3 with that square. False-positive rate: the
  non-faces with any detection at all (and the number of detections).
- time per megapixel: the astronaut (512x512) and a 1920x1080 photo (a Debian wallpaper resized
  when /usr/share/backgrounds has it, else the astronaut resized), median of `--runs` runs after a
  warm-up, the whole `detect_faces` call, with torch and OpenCV at each of `--threads` (1 and 2
  by default, interleaved run by run). The load average before the run is recorded: on a shared
  machine a second thread can make things far slower, not faster.
- detections are made with one thread (they do not depend on it).
- landmark placement in boxes: for the faces MTCNN and another detector both find (IoU >= 0.3),
  the mean position of MTCNN's five landmarks as fractions of the other detector's box, the
  numbers behind `pixelsmith.faces.align.BOX_LANDMARKS`; and how often Haar's eye cascade gives
  both eyes, and how far they lie from MTCNN's (over the inter-ocular distance).

    .venv/bin/python bench/faces_detect.py            # ~2 minutes on 2 cores
    .venv/bin/python bench/faces_detect.py --quick    # 20 + 20 lfw crops, 1 timing run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelsmith.faces import detect_faces  # noqa: E402
from pixelsmith.faces.detect import available_detectors  # noqa: E402
from pixelsmith.faces.nms import iou  # noqa: E402

# Hand-read face boxes (cheek to cheek, brow to chin), pixels (x0, y0, x1, y1).
ONE_FACE = {
    "astronaut": (183, 70, 270, 175),
    "grace_hopper": (175, 135, 350, 325),
    "camera": (195, 120, 257, 195),
}
NO_FACE = ("chelsea", "coffee", "brick", "grass", "gravel", "rocket")
IOU_HIT = 0.3
LFW_UP, LFW_PAD = 4, 50
WALLPAPER = Path("/usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg")


def photo(name: str) -> np.ndarray:
    """An 8-bit RGB or grey test photo by name."""
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))
    from skimage import data

    return np.asarray(getattr(data, name)())


def lfw_canvases(n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first n faces and n non-faces of lfw_subset, enlarged and padded (module doc)."""
    from skimage import data

    crops = data.lfw_subset()

    def canvas(a: np.ndarray) -> np.ndarray:
        im = Image.fromarray((a * 255).round().astype(np.uint8))
        big = np.asarray(im.resize((25 * LFW_UP, 25 * LFW_UP), Image.Resampling.BICUBIC))
        return np.pad(big, LFW_PAD, mode="edge")

    return [canvas(a) for a in crops[:n]], [canvas(a) for a in crops[100 : 100 + n]]


def overlap(a, b) -> float:
    return float(
        iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))
    )


def photos_table(detectors: list[str]) -> dict:
    rows = {}
    for det in detectors:
        tp = fp = 0
        per = {}
        for name, box in ONE_FACE.items():
            faces = detect_faces(photo(name), det)
            hit = [overlap(f.box, box) >= IOU_HIT for f in faces]
            tp += int(any(hit))
            fp += len(faces) - int(any(hit))
            per[name] = [f.to_dict() for f in faces]
        for name in NO_FACE:
            faces = detect_faces(photo(name), det)
            fp += len(faces)
            per[name] = [f.to_dict() for f in faces]
        rows[det] = {
            "true_positives": tp,
            "faces": len(ONE_FACE),
            "false_positives": fp,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / len(ONE_FACE),
            "detections": per,
        }
    return rows


def lfw_table(detectors: list[str], n: int) -> tuple[dict, list]:
    faces, others = lfw_canvases(n)
    square = (LFW_PAD, LFW_PAD, LFW_PAD + 25 * LFW_UP, LFW_PAD + 25 * LFW_UP)
    rows, pairs = {}, []
    found = {d: [detect_faces(c, d) for c in faces] for d in detectors}
    for det in detectors:
        hits = sum(any(overlap(f.box, square) >= IOU_HIT for f in fs) for fs in found[det])
        fps = [len(detect_faces(c, det)) for c in others]
        rows[det] = {
            "faces": n,
            "recall": hits / n,
            "non_faces": n,
            "false_positive_rate": sum(k > 0 for k in fps) / n,
            "false_detections": sum(fps),
        }
    if "mtcnn" in found:
        for i, c in enumerate(faces):
            pairs.append((c, found["mtcnn"][i], {d: found[d][i] for d in detectors}))
    return rows, pairs


def landmark_placement(pairs: list, detectors: list[str]) -> tuple[dict, dict]:
    """Mean MTCNN landmarks as fractions of the other detectors' boxes, and Haar's eye error.

    The eye error is the distance of each Haar eye from MTCNN's, over MTCNN's inter-ocular
    distance, on the faces both find where Haar's eye cascade found both eyes.
    """
    for name in ONE_FACE:
        img = photo(name)
        got = {d: detect_faces(img, d) for d in detectors}
        pairs.append((img, got["mtcnn"], got))
    out, errors, matched = {}, [], 0
    for det in detectors:
        rel = []
        for _, ref, got in pairs:
            for m in ref:
                match = [f for f in got[det] if overlap(f.box, m.box) >= IOU_HIT]
                if not match:
                    continue
                x0, y0, x1, y1 = match[0].box
                pts = np.array(m.landmarks)
                rel.append(
                    np.stack([(pts[:, 0] - x0) / (x1 - x0), (pts[:, 1] - y0) / (y1 - y0)], 1)
                )
                if det == "haar":
                    matched += 1
                    if match[0].landmarks is not None:
                        iod = np.linalg.norm(pts[1] - pts[0])
                        mine = np.array(match[0].landmarks[:2])
                        errors.append(np.linalg.norm(mine - pts[:2], axis=1).mean() / iod)
        if rel:
            mean, sd = np.mean(rel, 0), np.std(rel, 0)
            out[det] = {"n": len(rel), "mean": mean.round(3).tolist(), "sd": sd.round(3).tolist()}
    eyes = {
        "faces_both_found": matched,
        "with_two_eyes": len(errors),
        "mean_eye_error_over_iod": float(np.mean(errors)) if errors else None,
        "median_eye_error_over_iod": float(np.median(errors)) if errors else None,
    }
    return out, eyes


def _set_threads(n: int) -> None:
    torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass


def timing(detectors: list[str], runs: int, threads: list[int]) -> dict:
    """Median seconds per call for each detector, image and thread count, the counts interleaved."""
    astro = photo("astronaut")
    if WALLPAPER.exists():
        big_src = Image.open(WALLPAPER).convert("RGB")
        big_name = WALLPAPER.name
    else:
        big_src, big_name = Image.fromarray(astro), "astronaut"
    big = np.asarray(big_src.resize((1920, 1080), Image.Resampling.LANCZOS))
    out = {}
    for det in detectors:
        out[det] = {}
        for label, img in (("astronaut 512x512", astro), (f"{big_name} 1920x1080", big)):
            detect_faces(img, det)  # warm-up (and the one-off weight loading)
            times: dict[int, list[float]] = {t: [] for t in threads}
            for _ in range(runs):
                for t in threads:
                    _set_threads(t)
                    start = time.perf_counter()
                    n = len(detect_faces(img, det))
                    times[t].append(time.perf_counter() - start)
            mp = img.shape[0] * img.shape[1] / 1e6
            out[det][label] = {
                f"threads={t}": {
                    "seconds": statistics.median(v),
                    "s_per_mp": statistics.median(v) / mp,
                    "runs": runs,
                }
                for t, v in times.items()
            }
            out[det][label]["faces"] = n
    _set_threads(1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="20 + 20 lfw crops, one timing run")
    ap.add_argument(
        "--threads", default="1,2", help="thread counts timed, interleaved (default 1,2)"
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "faces_detect.json"))
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    load = os.getloadavg()
    _set_threads(1)  # detections do not depend on it; timing() sets each count in turn
    detectors = available_detectors()
    n = 20 if args.quick else 100
    runs = 1 if args.quick else args.runs
    t0 = time.time()
    photos = photos_table(detectors)
    lfw, pairs = lfw_table(detectors, n)
    place, eyes = landmark_placement(pairs, detectors) if "mtcnn" in detectors else ({}, {})
    speed = timing(detectors, runs, threads)

    print(
        f"\nphotos: {len(ONE_FACE)} with one face ({', '.join(ONE_FACE)}), {len(NO_FACE)} with none"
    )
    print(
        f"{'detector':9} {'TP':>3} {'FP':>3} {'precision':>9} {'recall':>6}   "
        f"{'lfw recall':>10} {'lfw FP rate':>11} {'FP dets':>7}"
    )
    for d in detectors:
        p, q = photos[d], lfw[d]
        prec = "-" if p["precision"] is None else f"{p['precision']:.2f}"
        print(
            f"{d:9} {p['true_positives']:>3} {p['false_positives']:>3} {prec:>9} "
            f"{p['recall']:>6.2f}   {q['recall']:>10.2f} {q['false_positive_rate']:>11.2f} "
            f"{q['false_detections']:>7}"
        )
    print(f"\ntime per call, median of {runs} (load average before: {load[0]:.1f})")
    for d in detectors:
        for label, r in speed[d].items():
            cells = "  ".join(
                f"{k}: {v['seconds']:6.3f} s {v['s_per_mp']:6.3f} s/MP"
                for k, v in r.items()
                if k.startswith("threads")
            )
            print(f"{d:6} {label:38} {cells}  ({r['faces']} faces)")
    if place:
        print("\nMTCNN landmarks inside other detectors' boxes (fractions of width, height)")
        for d, r in place.items():
            pts = "  ".join(f"({x:.2f},{y:.2f})" for x, y in r["mean"])
            print(f"{d:9} n={r['n']:3}  {pts}")
    if eyes.get("with_two_eyes"):
        print(
            f"haar eyes: both found on {eyes['with_two_eyes']} of the {eyes['faces_both_found']} "
            f"faces MTCNN also finds; distance to MTCNN's eyes "
            f"{eyes['median_eye_error_over_iod']:.2f} (median) of the inter-ocular distance"
        )
    record = {
        "benchmark": "faces_detect",
        "date": datetime.date.today().isoformat(),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_before": [round(v, 2) for v in load],
        },
        "threads_timed": threads,
        "torch": torch.__version__,
        "quick": args.quick,
        "protocol": __doc__.split("Protocol")[1].split("    .venv")[0].strip(),
        "photos": photos,
        "lfw_subset": lfw,
        "time": speed,
        "landmarks_in_boxes": place,
        "haar_eyes_vs_mtcnn": eyes,
        "seconds": round(time.time() - t0, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {args.out} ({record['seconds']} s)")


if __name__ == "__main__":
    main()
