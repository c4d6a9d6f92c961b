"""`pixelsmith edit NAME IN -o OUT`, one sub-command per declared operation (pixelsmith.jobs),
with its options as flags; the face operations also as `pixelsmith faces anonymise|restore`."""

from __future__ import annotations

import argparse
import json


def _run(args: argparse.Namespace) -> int:
    from pixelsmith.jobs import edit_files, operations
    from pixelsmith.jobs.files import stderr
    from pixelsmith.jobs.stamp import signer_option

    op = operations()[args.operation]
    result = edit_files(
        op,
        args.input,
        args.out,
        mask=getattr(args, "mask", None),
        translator=getattr(args, "run", None),
        max_pixels=args.max_pixels,
        device=getattr(args, "device", "cpu"),
        log=None if args.quiet or args.json else stderr,
        watermark=args.watermark,
        message=args.message,
        credentials=signer_option(args.credentials, args.cert, args.key),
        keep_metadata=args.keep_metadata,
        **{o.name: getattr(args, o.name) for o in op.options},
    )
    if args.json:
        print(json.dumps(result.reports, indent=1))
    else:
        print(result.summary(args.out))
    return 0


def add_operation(actions: argparse._SubParsersAction, verb: str, name: str) -> None:
    """`VERB` under a sub-command group: the declared operation `name` on files."""
    from pixelsmith.jobs import operations

    op = operations()[name]
    p = actions.add_parser(verb, help=op.about, description=f"{op.title}: {op.about}.")
    if "translator" in op.needs:
        p.add_argument("run", metavar="RUN|CHECKPOINT|zoo:NAME", help="a cyclegan run to use")
    p.add_argument("input", metavar="IMAGE|FOLDER", help="an image, or a folder (recursive)")
    p.add_argument(
        "-o", "--out", required=True, help="output file, or a folder (same names and modes)"
    )
    if "mask" in op.needs:
        p.add_argument(
            "--mask",
            required=True,
            help="a same-size image: its white pixels (or its transparent ones) are edited",
        )
    for option in op.options:
        option.add_to(p)
    p.add_argument("--max-pixels", type=int, help="refuse images above this many pixels (memory)")
    p.add_argument(
        "--keep-metadata",
        action="store_true",
        help="write each input's EXIF and XMP (camera, date, GPS location) into its result; by "
        "default only the colour profile is kept",
    )
    if "translator" in op.needs:
        p.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda, cuda:1")
    add_stamp_options(p)
    p.add_argument("--json", action="store_true", help="print a JSON report per file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_run, operation=op.name)


def add_stamp_options(
    p: argparse.ArgumentParser,
    marked: str = "each result",
    signed: str = "each result (edited, the operation, its options, the model, the input as "
    "parent, the mark)",
    formats: str = "; PNG, JPEG and WebP outputs only",
) -> None:
    """--watermark, --message, --credentials [DIR], --cert and --key: run options of every edit
    and of sample (`marked`, `signed`: what their help says is marked and signed)."""
    g = p.add_argument_group("marks and content credentials (docs/serve.md)")
    g.add_argument(
        "--watermark",
        metavar="KEYFILE",
        help=f"mark {marked} invisibly with this key (`pixelsmith keys new watermark`); "
        "images under 128 px a side stay unmarked",
    )
    g.add_argument(
        "--message",
        metavar="TEXT|0xHEX",
        help="what each mark carries (default: a random 4-byte image id per image)",
    )
    g.add_argument(
        "--credentials",
        nargs="?",
        const=True,
        metavar="DIR",
        help=f"sign a C2PA manifest into {signed}: with the local signer, or the one in "
        f"DIR{formats}",
    )
    g.add_argument("--cert", metavar="CHAIN.pem", help="sign with your own certificate chain")
    g.add_argument("--key", metavar="KEY.pem", help="the key of --cert")


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Every declared operation under `pixelsmith edit`."""
    from pixelsmith.jobs import operations

    for name in operations():
        add_operation(actions, name, name)


def add_aliases(actions: argparse._SubParsersAction, group: str) -> None:
    """The operations declared with an alias in `group` (e.g. `pixelsmith faces restore`)."""
    from pixelsmith.jobs import operations

    for name, op in operations().items():
        if op.alias is not None and op.alias[0] == group:
            add_operation(actions, op.alias[1], name)
