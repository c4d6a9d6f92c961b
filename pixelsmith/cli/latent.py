"""`pixelsmith edit invert|interpolate|direction|mix`: thin wrappers over pixelsmith.edit.latent.

Every option is checked, and every input file probed, before the model is loaded; a mistake is
one sentence (exit 2) and nothing is written.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelsmith.errors import UserError

_NEGATIVE_LIST = re.compile(r"^-\.?\d[\d.,eE+-]*$")
RUN_HELP = "a gan, stylegan or vae run folder, checkpoint or zoo:NAME"


# ---------------------------------------------------------------- parsing option texts


def parse_strengths(text: str) -> list[float]:
    """ "-3,-1.5,0,1.5,3" -> [-3.0, -1.5, 0.0, 1.5, 3.0], or UserError."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise UserError(f"strengths are numbers separated by commas, e.g. -3,0,3; got {text!r}")
    return values


def _check_png(out: str) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise UserError(f"-o {out}: this writes one grid image; give a .png file")
    return path


def _check_label(text: str | None) -> int | None:
    from pixelsmith.edit.latent import whole_number

    return None if text is None else whole_number(text, "--label", low=0)


def _load(args: argparse.Namespace, space: str | None = None) -> Any:
    """The model's latent space `space` (a LatentSpace)."""
    from pixelsmith.edit.latent import latent_space
    from pixelsmith.generate import load_model

    return latent_space(load_model(args.run, device=args.device), space)


def _log(args: argparse.Namespace) -> Callable[[str], None]:
    if getattr(args, "quiet", False):
        return lambda _m: None
    return lambda m: print(m, file=sys.stderr, flush=True)


def _write_png(image, out: Path) -> Path:  # noqa: ANN001
    from pixelsmith.imageio import save_image

    out.parent.mkdir(parents=True, exist_ok=True)
    return save_image(image, out)


# ---------------------------------------------------------------- verbs


def _interpolate(args: argparse.Namespace) -> int:
    from pixelsmith.edit.latent import interpolation, one_source, strip, whole_number
    from pixelsmith.edit.latent.interpolate import ANIMATION_SUFFIXES, write_animation

    source = one_source(args.seeds, args.images, args.codes, ("--seeds", "--images", "--codes"))
    if len(source) < 2:
        raise UserError(f"an interpolation needs at least two end points, got {len(source)}")
    steps = whole_number(args.steps, "--steps", low=2)
    scale = whole_number(args.scale, "--scale", low=1)
    try:
        fps = float(args.fps)
    except ValueError:
        raise UserError(f"--fps must be a number of frames per second, got {args.fps!r}") from None
    if not (fps > 0 and math.isfinite(fps)):
        raise UserError(f"--fps must be positive, got {args.fps}")
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix != ".png" and suffix not in ANIMATION_SUFFIXES:
        raise UserError(f"-o {out}: write a .png strip or a .webp / .gif animation")
    label = _check_label(args.label)
    invert_steps = whole_number(args.invert_steps, "--invert-steps", low=0)
    space = _load(args, args.space)
    made = interpolation(
        space, source, steps, label, invert_steps=invert_steps, start=args.start, log=_log(args)
    )
    images = made.images
    if suffix == ".png":
        nrow = steps if made.legs > 1 else None
        written = _write_png(strip(images, nrow=nrow, scale=scale), out)
    else:
        written = write_animation(images, out, fps=fps, loop=0, pingpong=args.pingpong, scale=scale)
    print(f"wrote {written} ({len(images)} frames, {space.kind} {space.interpolation})")
    return 0


def _direction(args: argparse.Namespace) -> int:
    from pixelsmith.edit.latent import (
        direction_grid,
        one_source,
        strip,
        whole_number,
        whole_numbers,
    )
    from pixelsmith.edit.latent.directions import check_method

    labelled = args.source is not None or args.target is not None
    if labelled and args.pca is not None:
        raise UserError("give --from/--to (a label direction) or --pca K, not both")
    if labelled and (args.source is None or args.target is None):
        raise UserError("a label direction needs both --from CLASS and --to CLASS")
    if not labelled and args.pca is None:
        raise UserError("name a direction: --from CLASS --to CLASS, or --pca K")
    if labelled and str(args.source).strip().lower() == str(args.target).strip().lower():
        raise UserError(f"--from and --to name the same class ({args.source})")
    components = whole_numbers(args.pca, "--pca", low=0) if args.pca is not None else []
    if args.strength is not None and args.strengths is not None:
        raise UserError("give --strength S or --strengths LIST, not both")
    if args.strength is not None:
        strengths = parse_strengths(args.strength)
        if len(strengths) != 1:
            raise UserError(
                f"--strength takes one number (--strengths a list), got {args.strength!r}"
            )
    else:
        default = "0,1,2,3" if labelled else "-3,-1.5,0,1.5,3"
        strengths = parse_strengths(args.strengths or default)
    check_method(args.method)
    samples = whole_number(args.samples, "--samples", low=20)
    scale = whole_number(args.scale, "--scale", low=1)
    source = one_source(args.seed, args.image, args.code, ("--seed", "IMAGE", "--code"))
    out = _check_png(args.out)
    label = _check_label(args.label)
    invert_steps = whole_number(args.invert_steps, "--invert-steps", low=0)
    grid = direction_grid(
        _load(args, args.space),
        source,
        strengths,
        classes=(args.source, args.target) if labelled else None,
        components=components,
        method=args.method,
        samples=samples,
        label=label,
        invert_steps=invert_steps,
        start=args.start,
        log=_log(args),
    )
    written = _write_png(strip(grid.images, nrow=len(strengths), scale=scale), out)
    print(f"wrote {written} ({grid.rows} rows x {len(strengths)} strengths)")
    for name, mean in grid.probabilities:
        text = "  ".join(f"{s:+g}: {p:.2f}" for s, p in zip(strengths, mean, strict=True))
        print(f"p({name}) by strength  {text}")
    return 0


def _mix(args: argparse.Namespace) -> int:
    from pixelsmith.edit.latent import mix_sources, mixing_space, parse_source, strip, whole_number
    from pixelsmith.generate import load_model

    coarse = parse_source(args.coarse, "--coarse")
    fine = parse_source(args.fine, "--fine")
    crossover = None if args.crossover is None else whole_number(args.crossover, "--crossover")
    out = _check_png(args.out)
    scale = whole_number(args.scale, "--scale", low=1)
    invert_steps = whole_number(args.invert_steps, "--invert-steps", low=0)
    space = mixing_space(load_model(args.run, device=args.device))
    made = mix_sources(
        space,
        coarse,
        fine,
        crossover,
        args.grid,
        invert_steps=invert_steps,
        start=args.start,
        log=_log(args),
    )
    if made.grid:
        image = strip(made.images, nrow=made.nrow, scale=scale)
        what = f"{made.coarse} x {made.fine} grid, crossover {made.crossover}"
    else:
        image = made.images[0].repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        k = made.crossover
        what = f"layers 0-{k - 1} from --coarse" if k else "all from --fine"
    written = _write_png(image, out)
    print(f"wrote {written} ({what})")
    return 0


# ---------------------------------------------------------------- parsers


class _Intermixed(argparse.ArgumentParser):
    """A parser whose positionals may follow its options (`direction RUN --pca 0 IMAGE`)."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201
        if self._inside:  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def _common(p: argparse.ArgumentParser, space: bool = True) -> None:
    p.add_argument("run", metavar="RUN|CHECKPOINT|zoo:NAME", help=RUN_HELP)
    if space:
        p.add_argument(
            "--space",
            choices=["z", "w", "w+"],
            help="the latent space (default: z, or W+ for a StyleGAN)",
        )
    p.add_argument("--label", help="a conditional model's class for every image (default 0)")
    p.add_argument(
        "--invert-steps",
        default="200",
        help="optimisation steps when starting from images (default 200)",
    )
    p.add_argument(
        "--start",
        choices=["encoder", "mean", "random"],
        default="encoder",
        help="where inverting images starts (default: the trained, cached encoder's guess)",
    )
    p.add_argument("--scale", default="1", help="enlarge the output this many times (nearest)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Register the latent edits under `pixelsmith edit`."""
    from pixelsmith.cli.invert import add_parsers as add_invert

    add_invert(actions)

    about = "a path between latent codes (slerp in z, lerp in W) as a strip or an animation"
    p = actions.add_parser("interpolate", help=about, description=about)
    _common(p)
    p.add_argument("--seeds", help="seeds of the end points, e.g. 3,7 (more make a tour)")
    p.add_argument("--images", help="image files to invert for the end points, A.png,B.png")
    p.add_argument("--codes", help="code files (from pixelsmith edit invert), A.safetensors,...")
    p.add_argument("--steps", default="8", help="images per path, both ends included (default 8)")
    p.add_argument("-o", "--out", required=True, help="strip.png, anim.webp or anim.gif")
    p.add_argument("--fps", default="12", help="animation frames per second (default 12)")
    p.add_argument("--pingpong", action="store_true", help="animation plays forward then back")
    p.set_defaults(func=_interpolate)

    about = "move images along a label (InterFaceGAN) or PCA (GANSpace) direction"
    cls, actions._parser_class = actions._parser_class, _Intermixed
    try:
        p = actions.add_parser("direction", help=about, description=about)
    finally:
        actions._parser_class = cls
    _common(p)
    p.add_argument("image", nargs="?", metavar="IMAGE", help="image file(s) to invert, A.png,...")
    p.add_argument("--from", dest="source", metavar="CLASS", help="class index or name")
    p.add_argument("--to", dest="target", metavar="CLASS", help="class index or name")
    p.add_argument("--pca", metavar="K", help="principal component(s) K (0 = the largest), 0,1")
    p.add_argument("--strength", help="one strength, in standard deviations of the codes")
    p.add_argument(
        "--strengths",
        help="a grid over strengths (default 0,1,2,3 for --from/--to, -3,-1.5,0,1.5,3 for --pca)",
    )
    p.add_argument("--seed", help="seed(s) of the images to move, e.g. 3 or 3,4,5")
    p.add_argument("--code", help="code file(s) from pixelsmith edit invert")
    p.add_argument("--method", default="linear", help="label direction: linear (default) or mean")
    p.add_argument("--samples", default="2000", help="codes drawn to find the direction")
    p.add_argument("-o", "--out", required=True, help="OUT.png: one row per image, per strength")
    # Let "--strengths -3,0,3" and "--strength -1.5" read as values, not as unknown options.
    p._negative_number_matcher = _NEGATIVE_LIST
    p.set_defaults(func=_direction)

    about = "StyleGAN style mixing of seeds, inverted images or codes: coarse from one, fine"
    about += " from the other"
    p = actions.add_parser("mix", help=about, description=about)
    _common(p, space=False)
    p.add_argument("--coarse", required=True, help="SEED | IMAGE | CODE (or a comma list)")
    p.add_argument("--fine", required=True, help="SEED | IMAGE | CODE (or a comma list)")
    p.add_argument("--crossover", help="layers [0, K) from --coarse (default 4, or half)")
    p.add_argument("--grid", action="store_true", help="write the grid with the sources")
    p.add_argument("-o", "--out", required=True, help="OUT.png")
    p.set_defaults(func=_mix)
