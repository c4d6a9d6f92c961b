"""`pixelsmith detect IMAGE|FOLDER [-o MAPS]`: was an image generated, and which regions of a
photo were filled in or pasted?

An image at most `SMALL` pixels a side goes to the generated-image detector (zoo
`fmnist-detector`, trained on 28x28 grey images); a larger one is a photo and goes to the
edited-region localiser (zoo `photo-localiser`), whose map `-o` writes as an overlay on the
photo. Pixelsmith has no detector for photo-sized generated images; the rows say so rather than
guess. Inputs follow jobs.plan (unreadable files in a folder skipped and counted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pixelsmith import imageio
from pixelsmith.edit.photo import Photo, write_photo
from pixelsmith.errors import UserError
from pixelsmith.forensics import generated
from pixelsmith.forensics import localise as loc
from pixelsmith.jobs.files import Log, Progress, each_photo
from pixelsmith.jobs.plan import find_inputs, plan

SMALL = 64
# A photo is called edited when at least EDITED_SHARE of its pixels score PIXEL or more: the
# share that 5% of unedited crops of the training photos reach (bench/forensics_calibrate.py,
# which also reports the call on the hold-out photos).
PIXEL = 0.7
EDITED_SHARE = 0.05
_RED = torch.tensor([1.0, 0.1, 0.1]).view(3, 1, 1)


def overlay(colour: Tensor, prob: Tensor) -> Tensor:
    """The photo greyed and dimmed, red where the map says edited: (3, H, W) in [0, 1]."""
    grey = colour.mean(0, keepdim=True).expand(3, -1, -1) * 0.7 + 0.15
    a = prob.clamp(0, 1)[None] * 0.75
    return grey * (1 - a) + _RED * a


class Examiner:
    """The detector and the localiser, each loaded on first need; `examine` one image."""

    def __init__(self, detector: str = generated.ZOO_NAME, localiser: str = loc.ZOO_NAME) -> None:
        self.detector_name, self.localiser_name = detector, localiser
        self._detector: generated.Detector | None = None
        self._localiser: torch.nn.Module | None = None

    @staticmethod
    def check_size(width: int, height: int, name: str) -> None:
        """Refuse an image too thin for the localiser that is not small enough for the detector."""
        if min(width, height) < loc.MIN_SIDE and max(width, height) > SMALL:
            raise UserError(
                f"{name} is {width}x{height}: too thin to look for edits in (photos need "
                f"{loc.MIN_SIDE} pixels a side, small images at most {SMALL})"
            )

    def load(self, small: bool = True, photos: bool = True) -> None:
        """Load the networks the images will need now, so a missing one stops the work early."""
        if small and self._detector is None:
            self._detector = generated.load_detector(self.detector_name)
        if photos and self._localiser is None:
            self._localiser = loc.load_localiser(self.localiser_name)

    def examine(self, photo: Photo) -> tuple[dict[str, Any], Tensor | None]:
        """The row of one image and, for a photo, its (H, W) map."""
        small = max(photo.size) <= SMALL
        self.load(small, not small)
        if small:
            p, prepared = self._detector.probability(photo.colour)
            return {"kind": "generated", "p_generated": round(p, 4), "generated": p >= 0.5,
                    "detector": self._detector.name, "prepared": prepared}, None  # fmt: skip
        prob = loc.localise(photo.colour, self._localiser)
        share = float((prob >= PIXEL).float().mean())
        row = {
            "kind": "edited-regions",
            "edited_share": round(share, 4),
            "max": round(float(prob.max()), 4),
            "edited": share >= EDITED_SHARE,
            "localiser": f"zoo:{self.localiser_name}",
            "p_generated": None,
            "note": "no detector for photo-sized generated images",
        }
        return row, prob


def detect_files(
    src: str | Path,
    out: str | Path | None = None,
    *,
    detector: str = generated.ZOO_NAME,
    localiser: str = loc.ZOO_NAME,
    max_pixels: int | None = None,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """A row per image of a file or folder; with `out`, each photo's map as a PNG overlay."""
    cap = imageio.max_pixels() if max_pixels is None else max_pixels
    p = plan(src, out, suffix=".png", cap=cap) if out is not None else find_inputs(src, (), cap)
    for i in p.items:
        Examiner.check_size(i.header.width, i.header.height, str(i.source))
    examiner = Examiner(detector, localiser)
    sides = [max(i.header.width, i.header.height) for i in p.items]
    examiner.load(min(sides) <= SMALL, max(sides) > SMALL)
    rows = []
    for item, photo in each_photo(p, Progress(len(p), log), cap):
        row, prob = examiner.examine(photo)
        if prob is not None and out is not None:
            colour = photo.colour.expand(3, -1, -1)
            target = write_photo(Photo(overlay(colour, prob), None, False, "RGB"), item.target)
            row["map"] = str(target)
        rows.append({"file": str(item.source), **row})
    p.say_skipped()
    return rows
