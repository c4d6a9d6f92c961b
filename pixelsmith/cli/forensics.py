"""`pixelsmith detect`: was an image generated, and which regions of a photo were edited?"""

from __future__ import annotations

import argparse
import json
import sys

from pixelsmith.jobs.forensics import PIXEL


def _line(row: dict) -> str:
    if row["kind"] == "generated":
        call = "generated" if row["generated"] else "real"
        return (f"{row['file']}: {call} (p_generated {row['p_generated']:.3f}, "
                f"{row['detector']}, {row['prepared']})")  # fmt: skip
    call = "edited regions" if row["edited"] else "no edited region found"
    share = 100 * row["edited_share"]
    text = (f"{row['file']}: {call} ({share:.1f}% of pixels at {PIXEL} or more, "
            f"max {row['max']:.2f}, {row['localiser']})")  # fmt: skip
    return text + (f" -> {row['map']}" if row.get("map") else "")


def _detect(args: argparse.Namespace) -> int:
    from pixelsmith.jobs.files import stderr
    from pixelsmith.jobs.forensics import detect_files

    rows = detect_files(
        args.input,
        args.out,
        detector=args.detector,
        localiser=args.localiser,
        max_pixels=args.max_pixels,
        log=None if args.quiet or args.json else stderr,
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(_line(row))
    if not args.quiet:
        small = [r for r in rows if r["kind"] == "generated"]
        photos = [r for r in rows if r["kind"] != "generated"]
        said = []
        if small:
            said.append(f"{sum(r['generated'] for r in small)} of {len(small)} small image(s) "
                        "called generated")  # fmt: skip
        if photos:
            said.append(f"{sum(r['edited'] for r in photos)} of {len(photos)} photo(s) with "
                        "edited regions")  # fmt: skip
        print("; ".join(said), file=sys.stderr)
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `detect`."""
    from pixelsmith.forensics.generated import ZOO_NAME as DETECTOR
    from pixelsmith.forensics.localise import ZOO_NAME as LOCALISER
    from pixelsmith.jobs.forensics import SMALL

    d = verbs.add_parser(
        "detect",
        help="was an image generated (small images), which regions of a photo were edited",
        description=f"Images at most {SMALL} pixels a side: the probability that they were "
        f"generated (zoo:{DETECTOR}, trained on 28x28 Fashion-MNIST and its generators). "
        f"Larger images (photos): a map of regions filled in or pasted (zoo:{LOCALISER}).",
    )
    d.add_argument("input", metavar="IMAGE|FOLDER")
    d.add_argument("-o", "--out", metavar="MAP", help="write each photo's map as a PNG overlay "
                   "(a file for one image, a folder for a folder)")  # fmt: skip
    d.add_argument("--json", action="store_true", help="print the rows as JSON")
    d.add_argument("--detector", default=DETECTOR, metavar="NAME", help="zoo detector")
    d.add_argument("--localiser", default=LOCALISER, metavar="NAME", help="zoo localiser")
    d.add_argument("--max-pixels", type=int, default=None, help="refuse larger images")
    d.add_argument("--quiet", action="store_true", help="no progress or summary")
    d.set_defaults(func=_detect)
