"""`pixelsmith export RUN -o model.onnx`: a thin wrapper over pixelsmith.deploy."""

from __future__ import annotations

import argparse

from pixelsmith.cli.keyfile import add_encrypt_option


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


def _latency(args: argparse.Namespace) -> int:
    import json

    import torch

    from pixelsmith.deploy.backends import BACKENDS, fastest, latency, table
    from pixelsmith.generate.load import load_model

    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if bad:
        from pixelsmith.errors import UserError

        raise UserError(f"unknown backend {bad[0]!r}; use {', '.join(BACKENDS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.run)
    rows = latency(model, names, rounds=args.rounds, batch=args.batch, size=args.size)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    else:
        print(table(rows, args.batch))
        print(
            f"fastest that agrees with eager: batch 1 {fastest(rows, 'p50_ms')}, "
            f"batch {args.batch} {fastest(rows)} ({torch.get_num_threads()} threads)"
        )
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `pixelsmith export`."""
    about = (
        "export a generator, translator or restoration network to ONNX (weights and metadata "
        "in one file)"
    )
    p = verbs.add_parser("export", help=about, description=about)
    p.add_argument("run", metavar="RUN|CHECKPOINT|zoo:NAME")
    p.add_argument("-o", "--out", required=True, help="NAME.onnx")
    p.add_argument("--direction", default="a2b", help="CycleGAN: a2b (default) or b2a")
    p.add_argument(
        "--check", action="store_true", help="run it in ONNX Runtime and compare with PyTorch"
    )
    add_encrypt_option(p)
    p.set_defaults(func=_export)
    b = verbs.add_parser("bench", help="measure a model's inference")
    bv = b.add_subparsers(dest="bench_verb", metavar="WHAT", required=True)
    about = "batch-1 latency, batch throughput and first-call cost of each inference backend"
    lat = bv.add_parser("latency", help=about, description=about)
    lat.add_argument("run", metavar="RUN|CHECKPOINT|zoo:NAME")
    lat.add_argument("--backends", default="eager,channels_last,compile,onnxruntime")
    lat.add_argument("--rounds", type=int, default=30, help="batch-1 calls per backend")
    lat.add_argument("--batch", type=int, default=64)
    lat.add_argument("--threads", type=int, help="torch (and ONNX Runtime) threads")
    lat.add_argument(
        "--size", type=int, help="restoration models: input side in pixels (default: its patch)"
    )
    lat.add_argument("--json", action="store_true")
    lat.set_defaults(func=_latency)
