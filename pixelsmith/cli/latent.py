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
from dataclasses import dataclass
from pathlib import Path

from pixelsmith.errors import UserError

CODE_SUFFIX = ".safetensors"
_NEGATIVE_LIST = re.compile(r"^-\.?\d[\d.,eE+-]*$")
RUN_HELP = "a gan, stylegan or vae run folder, checkpoint or zoo:NAME"


# ---------------------------------------------------------------- parsing option texts


def _int(text: str, what: str, low: int | None = None) -> int:
    t = str(text).strip()
    if not t.lstrip("-").isdigit():
        raise UserError(f"{what} takes a whole number, got {text!r}")
    value = int(t)
    if low is not None and value < low:
        raise UserError(f"{what} must be at least {low}, got {value}")
    return value


def _ints(text: str, what: str, low: int | None = None) -> list[int]:
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UserError(f"{what} takes numbers separated by commas, got {text!r}")
    try:
        return [_int(p, what, low) for p in parts]
    except UserError:
        raise UserError(f"{what} takes whole numbers separated by commas, got {text!r}") from None


def parse_strengths(text: str) -> list[float]:
    """ "-3,-1.5,0,1.5,3" -> [-3.0, -1.5, 0.0, 1.5, 3.0], or UserError."""
    import math

    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise UserError(f"strengths are numbers separated by commas, e.g. -3,0,3; got {text!r}")
    return values


@dataclass(frozen=True)
class Source:
    """Where codes come from: seeds, image files or code files (one kind per source)."""

    kind: str  # "seeds", "images" or "codes"
    items: tuple

    def __len__(self) -> int:
        return len(self.items)


def _files(text: str, what: str, suffixes: tuple[str, ...] | None = None) -> tuple[Path, ...]:
    from pixelsmith.imageio import probe_image

    paths = tuple(Path(p.strip()).expanduser() for p in str(text).split(",") if p.strip())
    if not paths:
        raise UserError(f"{what} takes file names separated by commas, got {text!r}")
    for p in paths:
        if suffixes is not None:
            if p.suffix.lower() not in suffixes:
                raise UserError(f"{what}: {p} is not a {' or '.join(suffixes)} code file")
            if not p.is_file():
                raise UserError(f"{what}: code file {p} does not exist")
        else:
            probe_image(p)
    return paths


def parse_item(text: str, what: str) -> Source:
    """One SEED | IMAGE | CODE.safetensors list (comma separated, all of one kind)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UserError(f"{what} takes a seed, an image or a {CODE_SUFFIX} code file")
    if all(p.isdigit() for p in parts):
        return Source("seeds", tuple(int(p) for p in parts))
    if all(p.lower().endswith(CODE_SUFFIX) for p in parts):
        return Source("codes", _files(text, what, (CODE_SUFFIX,)))
    if any(p.isdigit() or p.lower().endswith(CODE_SUFFIX) for p in parts):
        raise UserError(f"{what} mixes seeds, images and code files; give one kind")
    return Source("images", _files(text, what))


def _one_source(
    seeds: str | None, images: str | None, codes: str | None, flags: tuple[str, str, str]
) -> Source:
    given = [(f, v) for f, v in zip(flags, (seeds, images, codes), strict=True) if v is not None]
    if len(given) != 1:
        raise UserError(f"give exactly one of {', '.join(flags)}")
    flag, value = given[0]
    if value is seeds:
        return Source("seeds", tuple(_ints(value, flag, low=0)))
    if value is codes:
        return Source("codes", _files(value, flag, (CODE_SUFFIX,)))
    return Source("images", _files(value, flag))


def _check_png(out: str) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise UserError(f"-o {out}: this writes one grid image; give a .png file")
    return path


def _check_label(text: str | None) -> int | None:
    return None if text is None else _int(text, "--label", low=0)


# ---------------------------------------------------------------- codes from sources


def _load(args: argparse.Namespace):
    from pixelsmith.edit.latent import latent_space
    from pixelsmith.generate import load_model

    model = load_model(args.run, device=args.device)
    return latent_space(model, args.space)


def _labels(space, label: int | None, n: int):
    """One class per code for a conditional model (--label, default 0), else None."""
    import torch

    if not space.classes:
        if label is not None:
            raise UserError("this model is unconditional: leave out --label")
        return None
    return space.check_labels(torch.full((n,), label or 0, dtype=torch.long), n)


def _saved_labels(space, source: Source, label: int | None):
    """A conditional model's classes saved with code files, used when --label is not given."""
    import torch

    if source.kind != "codes" or label is not None or not space.classes:
        return None
    from pixelsmith.edit.latent.invert import load_code

    found = []
    for p in source.items:
        codes, meta = load_code(p, space)
        saved = meta.get("labels")
        if saved is None:
            return None
        found.append(torch.as_tensor(saved, dtype=torch.long).reshape(-1).expand(len(codes)))
    return space.check_labels(torch.cat(found), sum(len(f) for f in found))


def _load_code(space, path: Path):
    from pixelsmith.edit.latent.invert import load_code

    codes, _meta = load_code(path, space)
    return codes


def codes_of(
    space, source: Source, labels, steps: int, log: Callable[[str], None], start: str = "encoder"
):
    """The codes of a source: seeds (as sample() draws them), code files (`pixelsmith edit
    invert`'s), or images inverted into the space (`steps` optimisation steps)."""
    import torch

    if source.kind == "seeds":
        return space.from_seeds(list(source.items))
    if source.kind == "codes":
        return torch.cat([_load_code(space, p) for p in source.items])
    from pixelsmith.edit.latent.invert import invert, read_targets

    images, notes = read_targets(space, list(source.items))
    for note in notes:
        log(note)
    log(f"inverting {len(images)} image(s) into {space.kind} ({steps} steps)")
    result = invert(space, images, labels=labels, steps=steps, start=start, progress=log)
    return result.codes.detach().to(space.device)


def _log(args: argparse.Namespace) -> Callable[[str], None]:
    if getattr(args, "quiet", False):
        return lambda _m: None
    return lambda m: print(m, file=sys.stderr, flush=True)


def _write_png(image, out: Path) -> Path:
    from pixelsmith.imageio import save_image

    out.parent.mkdir(parents=True, exist_ok=True)
    return save_image(image, out)


# ---------------------------------------------------------------- verbs


def _interpolate(args: argparse.Namespace) -> int:
    import torch

    from pixelsmith.edit.latent.interpolate import (
        ANIMATION_SUFFIXES,
        interpolate,
        strip,
        write_animation,
    )

    flags = ("--seeds", "--images", "--codes")
    source = _one_source(args.seeds, args.images, args.codes, flags)
    if len(source) < 2:
        raise UserError(f"an interpolation needs at least two end points, got {len(source)}")
    steps = _int(args.steps, "--steps", low=2)
    scale = _int(args.scale, "--scale", low=1)
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
    invert_steps = _int(args.invert_steps, "--invert-steps", low=0)
    log = _log(args)
    space = _load(args)
    labels = _labels(space, label, 1)
    saved = _saved_labels(space, source, label)
    if saved is not None:  # the classes the codes were inverted with
        if len(set(saved.tolist())) > 1:
            raise UserError(
                f"the code files hold classes {sorted(set(saved.tolist()))}; a path keeps one "
                "class, so pass --label K"
            )
        labels = saved[:1]
    per_code = None if labels is None else labels.expand(len(source))
    codes = codes_of(space, source, per_code, invert_steps, log, args.start)
    paths = [interpolate(space, codes[i], codes[i + 1], steps)[0] for i in range(len(codes) - 1)]
    path = torch.cat([paths[0], *(p[1:] for p in paths[1:])])  # joints once
    images = space.images(path, None if labels is None else labels.expand(len(path)))
    if suffix == ".png":
        nrow = steps if len(paths) > 1 else None
        written = _write_png(strip(images, nrow=nrow, scale=scale), out)
    else:
        written = write_animation(images, out, fps=fps, loop=0, pingpong=args.pingpong, scale=scale)
    print(f"wrote {written} ({len(images)} frames, {space.kind} {space.interpolation})")
    return 0


def _direction(args: argparse.Namespace) -> int:
    import torch

    from pixelsmith.edit.latent.directions import (
        apply_in,
        check_method,
        label_direction,
        label_images,
        pca_directions,
        shipped_labeller,
    )
    from pixelsmith.imageio import make_grid

    labelled = args.source is not None or args.target is not None
    if labelled and args.pca is not None:
        raise UserError("give --from/--to (a label direction) or --pca K, not both")
    if labelled and (args.source is None or args.target is None):
        raise UserError("a label direction needs both --from CLASS and --to CLASS")
    if not labelled and args.pca is None:
        raise UserError("name a direction: --from CLASS --to CLASS, or --pca K")
    if labelled and str(args.source).strip().lower() == str(args.target).strip().lower():
        raise UserError(f"--from and --to name the same class ({args.source})")
    components = _ints(args.pca, "--pca", low=0) if args.pca is not None else []
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
    samples = _int(args.samples, "--samples", low=20)
    scale = _int(args.scale, "--scale", low=1)
    source = _one_source(args.seed, args.image, args.code, ("--seed", "IMAGE", "--code"))
    out = _check_png(args.out)
    label = _check_label(args.label)
    invert_steps = _int(args.invert_steps, "--invert-steps", low=0)
    log = _log(args)

    space = _load(args)
    labeller = None
    if labelled:
        if space.classes:
            raise UserError(
                "a conditional model takes its class as an input: draw another class with "
                "--labels (pixelsmith sample) instead of moving along a label direction"
            )
        labeller = shipped_labeller(space)
        a, b = labeller.class_id(args.source), labeller.class_id(args.target)
        if a == b:
            raise UserError(f"--from and --to name the same class ({labeller.classes[a]})")
    else:
        from pixelsmith.edit.latent.directions import base_space

        dim = base_space(space).dim
        if max(components) >= dim:
            raise UserError(
                f"--pca takes components 0-{dim - 1} (the code width), got {max(components)}"
            )
    labels = _labels(space, label, len(source))
    saved = _saved_labels(space, source, label)
    if saved is not None:  # the classes the codes were inverted with
        labels = saved
    codes = codes_of(space, source, labels, invert_steps, log, args.start)
    if labelled:
        names = f"{labeller.classes[a]} -> {labeller.classes[b]}"
        log(f"finding the {args.method} direction {names} ({samples} samples; cached)")
        found = [label_direction(space, a, b, args.method, samples, labeller=labeller)]
    else:
        log(f"finding {max(components) + 1} principal directions ({samples} samples; cached)")
        every = pca_directions(space, max(components) + 1, samples)
        found = [every[k] for k in components]
    rows = []
    for d in found:
        for i in range(len(codes)):
            moved = torch.cat([apply_in(space, codes[i : i + 1], d, s) for s in strengths])
            lab = None if labels is None else labels[i : i + 1].expand(len(strengths))
            rows.append(space.images(moved, lab))
    images = torch.cat(rows)
    grid = make_grid(images, nrow=len(strengths))
    if scale != 1:
        grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    written = _write_png(grid, out)
    print(f"wrote {written} ({len(rows)} rows x {len(strengths)} strengths)")
    if labeller is not None:
        probs = label_images(labeller.classify, images).reshape(len(rows), len(strengths), -1)
        for c in (b, a):
            mean = probs[..., c].mean(0).tolist()
            text = "  ".join(f"{s:+g}: {p:.2f}" for s, p in zip(strengths, mean, strict=True))
            print(f"p({labeller.classes[c]}) by strength  {text}")
    return 0


def _mix(args: argparse.Namespace) -> int:
    from pixelsmith.edit.latent import latent_space
    from pixelsmith.edit.latent.mixing import check_crossover, mix, mix_grid, wplus_space
    from pixelsmith.generate import load_model
    from pixelsmith.imageio import make_grid

    coarse = parse_item(args.coarse, "--coarse")
    fine = parse_item(args.fine, "--fine")
    crossover = None if args.crossover is None else _int(args.crossover, "--crossover")
    out = _check_png(args.out)
    scale = _int(args.scale, "--scale", low=1)
    invert_steps = _int(args.invert_steps, "--invert-steps", low=0)
    log = _log(args)

    model = load_model(args.run, device=args.device)
    space = wplus_space(latent_space(model, "w+" if model.name == "stylegan" else None))
    crossover = check_crossover(crossover, space.layers)
    c = codes_of(space, coarse, None, invert_steps, log, args.start)
    f = codes_of(space, fine, None, invert_steps, log, args.start)
    if len(c) == 1 and len(f) == 1 and not args.grid:
        image = space.images(mix(space, c, f, crossover))[0]
        what = f"layers 0-{crossover - 1} from --coarse" if crossover else "all from --fine"
    else:
        image = make_grid(mix_grid(space, c, f, crossover), nrow=len(f) + 1)
        what = f"{len(c)} x {len(f)} grid, crossover {crossover}"
    if scale != 1:
        image = image.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
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
