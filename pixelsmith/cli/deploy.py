"""`pixelsmith export RUN -o model.onnx`: a thin wrapper over pixelsmith.deploy."""

from __future__ import annotations

import argparse


def _export(args: argparse.Namespace) -> int:
    from pixelsmith.deploy import check_onnx, export_onnx

    path = export_onnx(args.run, args.out, direction=args.direction)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MB)")
    if args.check:
        r = check_onnx(args.run, path)
        print(
            f"ONNX Runtime vs eager PyTorch: max |difference| {r['max_abs_diff']:.2e} on {r['n']}"
        )
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `pixelsmith export`."""
    about = "export a generator or translator to ONNX (weights and metadata in one file)"
    p = verbs.add_parser("export", help=about, description=about)
    p.add_argument("run", metavar="RUN|CHECKPOINT|zoo:NAME")
    p.add_argument("-o", "--out", required=True, help="NAME.onnx")
    p.add_argument("--direction", default="a2b", help="CycleGAN: a2b (default) or b2a")
    p.add_argument(
        "--check", action="store_true", help="run it in ONNX Runtime and compare with PyTorch"
    )
    p.set_defaults(func=_export)
