"""`pixelsmith VERB ...`: thin wrappers that parse arguments and call the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pixelsmith import __version__
from pixelsmith.errors import UserError


def _train(args: argparse.Namespace) -> int:
    import yaml

    from pixelsmith import config as cfglib
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import run_config, train

    overrides = list(args.set or [])
    for flag, key in (
        ("data", "data.source"),
        ("steps", "train.steps"),
        ("epochs", "train.epochs"),
        ("minutes", "train.minutes"),
        ("seed", "train.seed"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    budget = [f for f in ("steps", "epochs", "minutes") if getattr(args, f) is not None]
    if args.resume:
        saved = run_config(args.resume)
        if args.model and args.model != saved.preset:
            raise UserError(
                f"run {args.resume} holds a {saved.family} model trained as {saved.preset}, "
                f"not {args.model}; resume it without naming a model"
            )
        base = cfglib.to_dict(saved)
        if budget:  # a new budget replaces the saved one instead of combining with it
            for f in ("steps", "epochs", "minutes"):
                base["train"][f] = None
        cfg = build_config(saved.preset, args.config, overrides, base=base)
    else:
        if not args.model:
            raise UserError("name a model to train (e.g. pixelsmith train dcgan), or --resume RUN")
        cfg = build_config(args.model, args.config, overrides)
    if args.dry_run:
        print(yaml.safe_dump(cfglib.to_dict(cfg), sort_keys=False), end="")
        return 0
    train(cfg, out_root=args.out, resume=args.resume, progress=not args.quiet)
    return 0


def _sample(args: argparse.Namespace) -> int:
    from pixelsmith.api import load_model, sample_to

    model = load_model(args.model, device=args.device)
    paths = sample_to(model, args.n, args.seed, args.out)
    where = paths[0] if len(paths) == 1 else f"{len(paths)} images in {args.out}"
    print(f"wrote {where}")
    return 0


def _data_show(args: argparse.Namespace) -> int:
    from pixelsmith.data.preview import preview

    path = preview(
        args.name,
        args.out,
        n=args.n,
        split=args.split,
        augment=args.augment,
        diffaugment=args.diffaugment,
        seed=args.seed,
        overrides=args.set or [],
    )
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pixelsmith", description="Train, sample and measure generative image models."
    )
    p.add_argument("--version", action="version", version=f"pixelsmith {__version__}")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")

    t = verbs.add_parser("train", help="train a model (dcgan, wgan-gp, hinge-gan, cgan)")
    t.add_argument("model", nargs="?", help="model preset: dcgan, gan, wgan-gp, hinge-gan, cgan")
    t.add_argument("--data", help="fashion-mnist, mnist, shapes, or a folder of images")
    budget = t.add_argument_group("budget (the first to run out ends training; default 10 minutes)")
    budget.add_argument("--steps", type=int)
    budget.add_argument("--epochs", type=float)
    budget.add_argument("--minutes", type=float)
    t.add_argument(
        "--out", default="runs", help="folder that holds numbered run folders (default runs)"
    )
    t.add_argument("--config", help="YAML file of settings")
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a setting, e.g. train.batch=128",
    )
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument(
        "--resume", metavar="RUN", help="continue a run folder from its newest checkpoint"
    )
    t.add_argument("--seed", type=int)
    t.add_argument("--quiet", action="store_true", help="no progress line")
    t.set_defaults(func=_train)

    s = verbs.add_parser("sample", help="sample images from a trained model")
    s.add_argument("model", metavar="RUN|CHECKPOINT")
    s.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "-o", "--out", required=True, help="OUT.png for a grid, or a folder for one PNG each"
    )
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=_sample)

    d = verbs.add_parser("data", help="look at data sets")
    dv = d.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    show = dv.add_parser("show", help="write a preview grid of a data set")
    show.add_argument("name", help="fashion-mnist, mnist, shapes, or a folder of images")
    show.add_argument("-o", "--out", required=True, help="grid PNG to write")
    show.add_argument("-n", type=int, default=32, help="images to show (default 32)")
    show.add_argument("--split", default="train")
    show.add_argument(
        "--augment", action="store_true", help="show each image beside its augmented version"
    )
    show.add_argument(
        "--diffaugment",
        metavar="POLICY",
        help="also show DiffAugment, e.g. color,translation,cutout",
    )
    show.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="augment setting, e.g. rotate_p=1"
    )
    show.add_argument("--seed", type=int, default=0)
    show.set_defaults(func=_data_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one sentence and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UserError as e:
        print(f"pixelsmith: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixelsmith: interrupted", file=sys.stderr)
        return 130
