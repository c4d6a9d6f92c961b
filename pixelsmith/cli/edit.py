"""`pixelsmith edit sr|denoise|inpaint|enhance IN -o OUT`: thin wrappers over pixelsmith.edit."""

from __future__ import annotations

import argparse
import os

_ABOUT = {
    "sr": "super-resolution x2 or x4 (tiled: any size)",
    "denoise": "remove Gaussian noise (sigma 0-50 on the 0-255 scale; blind unless --sigma)",
    "inpaint": "fill the white pixels of --mask",
    "enhance": "low-light / exposure correction, and classical contrast and colour tools",
}


def _run(args: argparse.Namespace) -> int:
    before = os.environ.get("PIXELSMITH_MAX_PIXELS")
    if args.max_pixels is not None:
        os.environ["PIXELSMITH_MAX_PIXELS"] = str(args.max_pixels)
    try:
        return _edit(args)
    finally:
        if before is None:
            os.environ.pop("PIXELSMITH_MAX_PIXELS", None)
        else:
            os.environ["PIXELSMITH_MAX_PIXELS"] = before


def _edit(args: argparse.Namespace) -> int:
    from pixelsmith.edit.files import edit_files

    options = {"model": args.model}
    if args.edit_verb == "sr":
        options["scale"] = args.scale
    elif args.edit_verb == "denoise":
        options["sigma"] = args.sigma
    elif args.edit_verb == "inpaint":
        options["method"] = args.method
    elif args.edit_verb == "enhance":
        options["methods"] = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    paths = edit_files(
        args.edit_verb,
        args.input,
        args.out,
        mask=getattr(args, "mask", None),
        progress=not args.quiet,
        **options,
    )
    where = paths[0] if len(paths) == 1 else f"{len(paths)} images in {args.out}"
    print(f"wrote {where}")
    return 0


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Register the restoration edits under `pixelsmith edit`."""
    from pixelsmith.edit.classical import FILLS
    from pixelsmith.edit.ops import ENHANCE_METHODS

    for verb, about in _ABOUT.items():
        p = actions.add_parser(verb, help=about, description=about)
        p.add_argument("input", metavar="IMAGE|FOLDER", help="an image, or a folder (recursive)")
        p.add_argument(
            "-o", "--out", required=True, help="output file, or a folder (same names and modes)"
        )
        p.add_argument(
            "--model",
            metavar="RUN|CKPT|zoo:NAME",
            help="a model of your own (e.g. a fine-tuned run); default: the shipped one",
        )
        p.add_argument(
            "--max-pixels", type=int, help="refuse images above this many pixels (memory)"
        )
        p.add_argument("--quiet", action="store_true", help="no progress lines")
        if verb == "sr":
            p.add_argument(
                "--scale", type=int, choices=[2, 3, 4], default=2, help="x3 needs --model"
            )
        elif verb == "denoise":
            p.add_argument("--sigma", type=float, help="the noise sigma (0-255) if you know it")
        elif verb == "inpaint":
            p.add_argument("--mask", required=True, help="same-size image; white = fill")
            p.add_argument(
                "--method",
                choices=["learned", *FILLS],
                default="learned",
                help="learned (default: harmonic fill + refinement) or a classical fill",
            )
        elif verb == "enhance":
            p.add_argument(
                "--methods",
                default="learned",
                help=f"comma list applied in order, from {', '.join(ENHANCE_METHODS)}",
            )
        p.set_defaults(func=_run)
