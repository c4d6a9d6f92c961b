"""Does a watermark or a protection change what the edited-region localiser sees? On 256x256
centre crops of the 12 hold-out photos: the photo-level call (jobs.forensics: EDITED_SHARE of
pixels at PIXEL or more) on unedited crops as they are, marked (pixelsmith's watermark at its
default 40.5 dB) and protected (`robust.protect` against inpaint, sr and denoise, 8/255, 20
steps); and on crops edited by the zoo's inpainter as they are, marked after the edit (what the
service returns) and edited after protection (a protected photo someone edits), with the pixel
AUC pooled over the crops (scikit-learn's roc_auc_score).

    .venv/bin/python bench/forensics_marks.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from forensics_localise import load_photos  # noqa: E402

from pixelsmith.forensics.edits import make_edit, quantise  # noqa: E402
from pixelsmith.forensics.localise import load_localiser, localise  # noqa: E402
from pixelsmith.jobs.forensics import EDITED_SHARE, PIXEL  # noqa: E402
from pixelsmith.provenance import watermark as wm  # noqa: E402
from pixelsmith.provenance.keys import new_key  # noqa: E402
from pixelsmith.robust.editors import protect  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "forensics_marks.json"
SIDE = 256


def centre(x: torch.Tensor) -> torch.Tensor:
    """The SIDE x SIDE centre of a photo."""
    h, w = x.shape[-2:]
    y0, x0 = (h - SIDE) // 2, (w - SIDE) // 2
    return x[:, y0 : y0 + SIDE, x0 : x0 + SIDE].contiguous()


def main() -> None:
    torch.set_num_threads(1)
    net = load_localiser()
    key = new_key(32)
    photos = [centre(x) for _, x in load_photos()]

    def mark(x: torch.Tensor) -> torch.Tensor:
        return quantise(wm.embed(x, key, b"id01"))

    def guard(x: torch.Tensor) -> torch.Tensor:
        return quantise(protect(x, eps=8 / 255, steps=20).image)

    def edit(x: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return make_edit(x, "inpaint", np.random.default_rng([31, i]))

    unedited = {"as is": lambda x, i: x, "marked": lambda x, i: mark(x),
                "protected": lambda x, i: guard(x)}  # fmt: skip
    edited = {
        "as is": lambda x, i: edit(x, i),
        "marked after the edit": lambda x, i: (lambda e: (mark(e[0]), e[1]))(edit(x, i)),
        "edited after protection": lambda x, i: edit(guard(x), i),
    }
    out: dict[str, dict] = {"unedited": {}, "inpainted": {}}
    for name, fn in unedited.items():
        shares = [float((localise(fn(x, i), net) >= PIXEL).float().mean()) for i, x in
                  enumerate(photos)]  # fmt: skip
        called = float(np.mean(np.array(shares) >= EDITED_SHARE))
        out["unedited"][name] = {"called_edited": round(called, 3),
                                 "mean_share": round(float(np.mean(shares)), 4)}  # fmt: skip
        print(f"unedited {name:25s} called edited {called:.2f}", flush=True)
    for name, fn in edited.items():
        maps, masks, shares = [], [], []
        for i, x in enumerate(photos):
            y, m = fn(x, i)
            p = localise(y, net)
            maps.append(p.flatten().numpy())
            masks.append(m.flatten().numpy())
            shares.append(float((p >= PIXEL).float().mean()))
        auc = roc_auc_score(np.concatenate(masks) > 0.5, np.concatenate(maps))
        called = float(np.mean(np.array(shares) >= EDITED_SHARE))
        out["inpainted"][name] = {
            "pixel_auc": round(float(auc), 4),
            "called_edited": round(called, 3),
        }
        print(f"inpainted {name:25s} pixel AUC {auc:.3f}, called edited {called:.2f}", flush=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
