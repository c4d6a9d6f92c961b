"""Does anonymisation remove identity? The face matcher re-identifies faces before and after.

    python bench/faces_anonymise.py [--quick]

Protocol: the 100 faces of scikit-image's lfw_subset, each enlarged x4 (bicubic, 100x100) with
the face box [12, 12, 88, 88] (margin 0.1, so the region is almost the whole crop). For each
method, every face is anonymised and the matcher (pixelsmith.faces.match, LBPH) ranks the 100
originals by similarity to it: re-identification = the true original ranked first (chance is
1%). "recaptured" is the control: the same faces shifted 2 px, rescaled 5% and JPEG'd at 75,
which a working matcher still re-identifies. Also the similarity of each face to its anonymised
self against that of two different people (the median over all pairs). Then the three offline
photos that hold a face (astronaut, camera, grace_hopper) as detected, each method's similarity.
Writes bench/results/faces_anonymise.json.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pixelsmith.faces.anonymise import METHODS, anonymise, load_face_generator
from pixelsmith.faces.types import Face

OUT = Path(__file__).parent / "results" / "faces_anonymise.json"
BOX = (12.0, 12.0, 88.0, 88.0)
MARGIN = 0.1


def lfw_faces(n: int) -> torch.Tensor:
    """The first n lfw_subset faces, x4 bicubic, (n, 1, 100, 100) in [0, 1]."""
    from skimage.data import lfw_subset

    x = torch.from_numpy(lfw_subset()[:n]).float()[:, None]
    return F.interpolate(x, size=(100, 100), mode="bicubic", align_corners=False).clamp(0, 1)


def recapture(x: torch.Tensor) -> torch.Tensor:
    """Shift 2 px, scale 1.05 about the centre, JPEG quality 75: the same face, re-taken."""
    theta = torch.tensor([[1 / 1.05, 0, 0.04], [0, 1 / 1.05, 0.04]]).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    out = []
    for im in y:
        buf = io.BytesIO()
        Image.fromarray((im[0].numpy() * 255).round().astype(np.uint8)).save(
            buf, "JPEG", quality=75
        )
        arr = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255
        out.append(torch.from_numpy(arr)[None])
    return torch.stack(out)


def box_crop(x: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = (int(v) for v in BOX)
    return x[..., y0:y1, x0:x1]


def identification(matcher, originals: torch.Tensor, probes: torch.Tensor) -> dict:
    """Top-1 re-identification rate, the true pair's similarity, and strangers' similarity."""
    sim = matcher.similarity_matrix(box_crop(probes), box_crop(originals))  # probes x originals
    n = len(originals)
    top1 = float((sim.argmax(1) == torch.arange(n)).float().mean())
    true = sim.diagonal()
    off = sim[~torch.eye(n, dtype=torch.bool)]
    return {
        "reidentified": round(top1, 3),
        "true_pair_similarity_median": round(float(true.median()), 4),
        "stranger_similarity_median": round(float(off.median()), 4),
        "true_pair_above_stranger_median": round(float((true > off.median()).float().mean()), 3),
    }


def photo_faces() -> list[tuple[str, torch.Tensor]]:
    """(name, image) of the offline photos that hold one face each."""
    import matplotlib.cbook
    import skimage.data

    def t(arr: np.ndarray) -> torch.Tensor:
        arr = arr[..., None] if arr.ndim == 2 else arr[..., :3]
        return torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(f).convert("RGB"))
    return [
        ("astronaut", t(skimage.data.astronaut())),
        ("camera", t(skimage.data.camera())),
        ("grace_hopper", t(hopper)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 faces, no photos")
    args = ap.parse_args()
    torch.set_num_threads(2)
    from pixelsmith.faces.match import FaceMatcher

    matcher = FaceMatcher()
    faces = lfw_faces(30 if args.quick else 100)
    face = Face(BOX, 1.0)
    try:
        gen = load_face_generator()
    except Exception as e:  # the zoo's face generator may not be installed in a dev tree
        print(f"generate skipped: {e}")
        gen = None
    rows: dict[str, dict] = {"none (identity)": identification(matcher, faces, faces)}
    rows["recaptured (control)"] = identification(matcher, faces, recapture(faces))
    for method in METHODS:
        if method == "generate" and gen is None:
            continue
        t0 = time.perf_counter()
        done = torch.stack(
            [
                anonymise(x, [face], method, MARGIN, seed=i, generator=gen).image
                for i, x in enumerate(faces)
            ]
        )
        row = identification(matcher, faces, done)
        row["seconds_per_face"] = round((time.perf_counter() - t0) / len(faces), 4)
        rows[method] = row
    print(f"{'method':<22} {'re-identified':>13} {'true sim':>9} {'stranger sim':>13}")
    for k, r in rows.items():
        print(
            f"{k:<22} {r['reidentified']:>13.0%} {r['true_pair_similarity_median']:>9.3f} "
            f"{r['stranger_similarity_median']:>13.3f}"
        )
    photos = []
    if not args.quick:
        from pixelsmith.faces.detect import detect_faces

        for name, img in photo_faces():
            found = detect_faces(img)
            entry = {"photo": name, "faces": [f.to_dict() for f in found], "similarity": {}}
            for method in METHODS:
                if method == "generate" and gen is None:
                    continue
                out = anonymise(img, found, method, generator=gen).image
                sims = []
                for f in found:
                    x0, y0, x1, y1 = (int(v) for v in f.box)
                    sims.append(
                        float(matcher.similarity(img[:, y0:y1, x0:x1], out[:, y0:y1, x0:x1]))
                    )
                entry["similarity"][method] = [round(s, 4) for s in sims]
            photos.append(entry)
            print(name, len(found), "face(s)", entry["similarity"])
    OUT.parent.mkdir(exist_ok=True)
    result = {
        "command": "python bench/faces_anonymise.py" + (" --quick" if args.quick else ""),
        "protocol": __doc__.split("Protocol:")[1].split("Writes")[0].strip(),
        "matcher": getattr(matcher, "name", type(matcher).__name__),
        "faces": len(faces),
        "lfw": rows,
        "photos": photos,
        "chance": round(1 / len(faces), 3),
        "stranger_median": statistics.median(
            [r["stranger_similarity_median"] for r in rows.values()]
        ),
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
