"""`pixelsmith faces anonymise|restore`: thin wrappers over pixelsmith.faces."""

from __future__ import annotations

import argparse
import json
import os


def _run(args: argparse.Namespace) -> int:
    from pixelsmith.faces.files import faces_files

    before = os.environ.get("PIXELSMITH_MAX_PIXELS")
    if args.max_pixels is not None:
        os.environ["PIXELSMITH_MAX_PIXELS"] = str(args.max_pixels)
    try:
        options = dict(
            margin=args.margin,
            boxes=args.boxes,
            detector=args.detector,
            min_size=args.min_size,
            threshold=args.threshold,
            progress=not args.quiet,
        )
        if args.faces_verb == "anonymise":
            options.update(
                method=args.method,
                feather=args.feather,
                seed=args.seed,
                generator=args.generator,
                blocks=args.blocks,
                blur=args.blur,
            )
        else:
            ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
            options.update(ops=ops, scale=args.scale)
        report = faces_files(args.faces_verb, args.input, args.out, **options)
    finally:
        if before is None:
            os.environ.pop("PIXELSMITH_MAX_PIXELS", None)
        else:
            os.environ["PIXELSMITH_MAX_PIXELS"] = before
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        total = sum(e["faces"] for e in report)
        print(f"wrote {len(report)} image(s) to {args.out}; {total} face(s)")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IMAGE|FOLDER", help="an image, or a folder (recursive)")
    p.add_argument("-o", "--out", required=True, help="output file, or a folder (same names)")
    p.add_argument(
        "--boxes", help="JSON boxes instead of detection: [[x0, y0, x1, y1], ...] or detect --json"
    )
    p.add_argument("--detector", default="auto", help="auto (default), mtcnn, haar or lbp")
    p.add_argument("--min-size", type=int, default=20, help="smallest face to find (pixels)")
    p.add_argument("--threshold", type=float, help="the detector's score threshold")
    p.add_argument(
        "--margin", type=float, default=0.25, help="grow each box by this fraction per side"
    )
    p.add_argument("--max-pixels", type=int, help="refuse images above this many pixels")
    p.add_argument("--json", action="store_true", help="print a JSON report per file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_run)


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Register the face edits under `pixelsmith faces`."""
    from pixelsmith.faces.anonymise import METHODS
    from pixelsmith.faces.restore import OPS

    about = "replace every face (box + margin) and feather it in; the rest stays untouched"
    a = actions.add_parser("anonymise", help=about, description=about)
    _common(a)
    a.add_argument("--method", choices=METHODS, default="blur")
    a.add_argument("--feather", type=int, help="blend width in pixels (default: from the margin)")
    a.add_argument("--seed", type=int, default=0, help="first seed of the generated faces")
    a.add_argument("--blocks", type=int, help="pixelate: blocks across a face (default 4)")
    a.add_argument(
        "--blur", type=float, help="blur: sigma as a fraction of the face's size (default 0.4)"
    )
    a.add_argument(
        "--generator",
        metavar="RUN|zoo:NAME",
        help="face generator for --method generate (default zoo:faces-stylegan)",
    )
    about = "run the shipped denoise / enhance / SR models on each face and blend them back"
    r = actions.add_parser("restore", help=about, description=about)
    _common(r)
    r.add_argument(
        "--ops", default="denoise,enhance", help=f"comma list in order, from {', '.join(OPS)}"
    )
    r.add_argument(
        "--scale", type=int, choices=[2, 4], default=2, help="with sr: the whole photo's scale"
    )
