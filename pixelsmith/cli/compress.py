"""`pixelsmith compress RUN --width W`: distil a gan model into a thinner generator."""

from __future__ import annotations

import argparse
from typing import Any

from pixelsmith.errors import UserError


def check_width(width: float) -> float:
    """`width` if it is a fraction strictly between 0 and 1, else UserError."""
    if not 0 < width < 1:
        raise UserError(
            f"--width {width:g} is not a fraction of the teacher's channels; give 0 < W < 1 "
            "(e.g. --width 0.5 for half the channels)"
        )
    return width


def distill_overrides(teacher: str, width: float, init: str) -> list[str]:
    """The --set overrides of a distill run: the teacher, its architecture and its data."""
    from pixelsmith.models.distill import teacher_settings
    from pixelsmith.utils import checkpoint_file as ckf
    from pixelsmith.zoo import resolve

    path = resolve(teacher)
    settings = teacher_settings(path)
    data: dict[str, Any] = ckf.read_manifest(ckf.resolve_checkpoint(path))["config"]["data"]
    out = [f"model.{k}={_yaml(v)}" for k, v in settings.items()]
    out += [f"model.width={width}", f"model.student_init={init}"]
    out += [f"data.{k}={_yaml(data[k])}" for k in ("source", "split", "channels", "size", "limit")]
    return out


def _yaml(v: Any) -> str:
    if v is None:
        return "null"
    return str(v).lower() if isinstance(v, bool) else str(v)


def _compress(args: argparse.Namespace) -> int:
    import yaml

    from pixelsmith import config as cfglib
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import run_config, train

    budget = [f"train.{f}={getattr(args, f)}" for f in ("steps", "minutes") if getattr(args, f)]
    extra = [
        *(args.set or []),
        *budget,
        *([f"train.seed={args.seed}"] if args.seed is not None else []),
    ]
    if args.resume:
        given = [f for f in ("width", "init") if getattr(args, f) is not None]
        if args.run is not None or given:
            what = "a teacher" if args.run is not None else f"--{given[0]}"
            raise UserError(
                f"--resume continues a run with its own teacher, width and init; {what} cannot "
                "change them (start a new run instead)"
            )
        saved = cfglib.to_dict(run_config(args.resume))
        if budget:
            saved["train"].update(steps=None, minutes=None, epochs=None)
        cfg = build_config("distill", overrides=extra, base=saved)
    else:
        if args.run is None:
            raise UserError("name the teacher: pixelsmith compress RUN --width W")
        width = check_width(0.5 if args.width is None else args.width)
        init = args.init or "prune"
        cfg = build_config("distill", overrides=[*distill_overrides(args.run, width, init), *extra])
    if args.dry_run:
        print(yaml.safe_dump(cfglib.to_dict(cfg), sort_keys=False), end="")
        return 0
    train(cfg, out_root=args.out, resume=args.resume, progress=not args.quiet)
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `pixelsmith compress`."""
    about = (
        "distil a gan model into a generator with a fraction of its channels (pixel, feature "
        "and adversarial losses against the teacher), on the training engine"
    )
    p = verbs.add_parser("compress", help=about, description=about)
    p.add_argument("run", nargs="?", metavar="RUN|CHECKPOINT|zoo:NAME", help="the gan teacher")
    p.add_argument("--width", type=float, help="fraction of channels, 0 < W < 1 (default 0.5)")
    p.add_argument(
        "--init",
        choices=["prune", "random"],
        help="start from the teacher's most important channels (largest BatchNorm scale; the "
        "default) or from scratch",
    )
    p.add_argument("-o", "--out", default="runs", help="folder of numbered run folders")
    p.add_argument("--steps", type=int)
    p.add_argument("--minutes", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="as for pixelsmith train")
    p.add_argument("--resume", metavar="RUN", help="continue a distill run from its checkpoint")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_compress)
