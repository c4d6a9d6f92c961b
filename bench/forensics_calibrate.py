"""The photo-level call of `pixelsmith detect`: a photo is "edited" when the share of its
pixels the localiser scores PIXEL (0.7) or more reaches a threshold. This picks the threshold on
crops of the Debian *training* photos (unedited, and each with one edit of a trained kind), so
that at most 5% of unedited crops are called edited, then reports how the call does on the 12
hold-out photos (unedited, and with one edit of each kind, as bench/forensics_localise.py makes
them).

    .venv/bin/python bench/forensics_calibrate.py            # prints the threshold and the rates
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from forensics_localise import edit_case, load_photos  # noqa: E402

from pixelsmith.data.photos import training_photos  # noqa: E402
from pixelsmith.forensics.edits import KINDS, TRAINED_KINDS, make_edit  # noqa: E402
from pixelsmith.forensics.localise import load_localiser, localise  # noqa: E402
from pixelsmith.imageio import read_natural  # noqa: E402
from pixelsmith.jobs.forensics import EDITED_SHARE, PIXEL  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "forensics_calibrate.json"
FALSE_ALARMS = 0.05
CROP, N = 384, 60


def share(x: torch.Tensor, net: torch.nn.Module) -> float:
    """The share of pixels at PIXEL or more."""
    return float((localise(x, net) >= PIXEL).float().mean())


def training_crops() -> list[torch.Tensor]:
    """N seeded CROPxCROP crops of the training photos, one per photo in turn (photos smaller
    than a crop left out)."""
    rng = np.random.default_rng(7)
    files, out, i = training_photos(), [], 0
    while len(out) < N:
        arr, _ = read_natural(files[i % len(files)])
        i += 1
        arr = arr[..., :3] if arr.shape[2] >= 3 else np.repeat(arr[..., :1], 3, axis=2)
        h, w = arr.shape[:2]
        if min(h, w) < CROP:
            continue
        y, x = rng.integers(0, h - CROP + 1), rng.integers(0, w - CROP + 1)
        crop = arr[y : y + CROP, x : x + CROP].copy()
        out.append(torch.from_numpy(crop).permute(2, 0, 1).float() / 255)
    return out


def main() -> None:
    torch.set_num_threads(1)
    net = load_localiser()
    crops = training_crops()
    rng = np.random.default_rng(8)
    clean = np.array([share(c, net) for c in crops])
    kinds = [k for k in TRAINED_KINDS if k != "splice"]
    edited = np.array([share(make_edit(c, kinds[i % len(kinds)], rng)[0], net)
                       for i, c in enumerate(crops)])  # fmt: skip
    threshold = found = float(np.quantile(clean, 1 - FALSE_ALARMS))
    print(f"training crops: unedited share median {np.median(clean):.4f}, edited "
          f"{np.median(edited):.4f}; threshold at {FALSE_ALARMS:.0%} false alarms: "
          f"{threshold:.4f} (pixelsmith uses {EDITED_SHARE}); edited crops caught "
          f"{np.mean(edited >= threshold):.2f}")  # fmt: skip
    edited_caught = float(np.mean(edited >= threshold))
    threshold = EDITED_SHARE
    photos = load_photos()
    held = np.array([share(x, net) for _, x in photos])
    out = {
        "pixel": PIXEL,
        "threshold_found": round(found, 4),
        "threshold_used": EDITED_SHARE,
        "training_crops": N,
        "training_edited_caught": round(edited_caught, 3),
        "holdout_called_edited": {"none": round(float(np.mean(held >= threshold)), 3)},
    }
    print(
        f"hold-out unedited called edited: {np.mean(held >= threshold):.2f} "
        f"({int(np.sum(held >= threshold))} of {len(held)})"
    )
    for k, kind in enumerate(KINDS):
        if kind == "none":
            continue
        got = np.array([share(edit_case(photos, i, k, kind)[0], net) for i in range(len(photos))])
        out["holdout_called_edited"][kind] = round(float(np.mean(got >= threshold)), 3)
        print(f"hold-out {kind:10s} called edited: {np.mean(got >= threshold):.2f}")
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
