"""`pixelsmith faces detect|align|...`: thin wrappers over pixelsmith.faces."""

from __future__ import annotations

import argparse
import json
import sys


def _log(args: argparse.Namespace):
    return None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))


def _finding(args: argparse.Namespace, what: str) -> dict:
    """The detector options, checked by their declarations (pixelsmith.jobs.faces.DETECTING)."""
    from pixelsmith.jobs.faces import DETECTING
    from pixelsmith.jobs.options import parse_all

    return parse_all(DETECTING, {o.name: getattr(args, o.name) for o in DETECTING}, what)


def _detect(args: argparse.Namespace) -> int:
    from pixelsmith.jobs.detect import detect_files

    rows = detect_files(
        args.input,
        **_finding(args, "faces detect"),
        out=args.out,
        cap=args.max_pixels,
        log=None if args.json else _log(args),
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        for i, f in enumerate(row["faces"]):
            box = ",".join(f"{v:.1f}" for v in f["box"])
            line = f"{row['file']}\tface {i}\tbox {box}\tscore {f['score']:.4f}\t{f['detector']}"
            if f["landmarks"]:
                marks = " ".join(f"{k}={x:.1f},{y:.1f}" for k, (x, y) in f["landmarks"].items())
                line += f"\t{marks}"
            print(line)
    n = sum(len(r["faces"]) for r in rows)
    if not args.quiet:
        print(f"{n} face(s) in {len(rows)} image(s)", file=sys.stderr)
        if args.out:
            print(f"drew the boxes to {args.out}", file=sys.stderr)
    return 0


def _align(args: argparse.Namespace) -> int:
    from pixelsmith.jobs.detect import align_files

    paths = align_files(
        args.input,
        args.out,
        size=args.size,
        padding=args.padding,
        **_finding(args, "faces align"),
        cap=args.max_pixels,
        log=_log(args),
    )
    print(f"wrote {len(paths)} aligned face(s) to {args.out}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IMAGE|FOLDER", help="an image, or a folder (recursive)")
    from pixelsmith.jobs.faces import DETECTING

    for option in DETECTING:
        option.add_to(p)
    p.add_argument("--max-pixels", type=int, help="refuse images above this many pixels (memory)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `pixelsmith faces` and its actions."""
    f = verbs.add_parser("faces", help="detect, align, anonymise and restore faces")
    fv = f.add_subparsers(dest="faces_verb", metavar="ACTION", required=True)

    about = "find faces: boxes, scores and five landmarks where the detector gives them"
    d = fv.add_parser("detect", help=about, description=about)
    _common(d)
    d.add_argument("--json", action="store_true", help="print [{file, width, height, faces}]")
    d.add_argument(
        "-o", "--out", help="draw the boxes: a PNG for one image, or a folder for a folder"
    )
    d.set_defaults(func=_detect)

    about = "write each face as a square crop, eyes level at fixed positions (NAME_face0.png ...)"
    a = fv.add_parser("align", help=about, description=about)
    _common(a)
    a.add_argument("-o", "--out", required=True, help="folder for the crops")
    a.add_argument("--size", type=int, default=112, help="crop side in pixels (>= 16; 112)")
    a.add_argument(
        "--padding",
        type=float,
        default=0.0,
        help="margin on each side as a fraction of the face template (0 = ArcFace's tight "
        "112x112 crop; 0.25 shows the whole head)",
    )
    a.set_defaults(func=_align)

    from pixelsmith.cli.edit import add_aliases

    add_aliases(fv, "faces")
