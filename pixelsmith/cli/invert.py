"""`pixelsmith edit invert RUN IMAGE|FOLDER -o OUT`: wraps pixelsmith.edit.latent.invert."""

from __future__ import annotations

import argparse
import math
import sys

_ABOUT = (
    "find the latent code (z, W or W+) whose image matches a real image: an encoder trained on "
    "the generator's own samples gives the start, then Adam on the code with a pixel and a "
    "perceptual loss; writes OUT.png (the reconstruction) and OUT.safetensors (the code)"
)


def _run(args: argparse.Namespace) -> int:
    from pixelsmith.jobs.invert import invert_files

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result, rows = invert_files(
        args.model,
        args.input,
        args.out,
        space=args.space,
        steps=args.steps,
        start=args.start,
        perceptual=args.perceptual,
        label=args.label,
        seed=args.seed,
        encoder_steps=args.encoder_steps,
        device=args.device,
        cap=args.max_pixels,
        progress=None if args.quiet else say,
    )
    for row in rows:
        fd = row["feature_distance"]
        feat = "" if math.isnan(fd) else f"  feature distance {fd:.4f}"
        print(
            f"{row['source']}: PSNR {row['psnr']:.2f} dB  SSIM {row['ssim']:.4f}{feat}  "
            f"-> {row['png']}, {row['code']}"
        )
    n = len(rows)
    print(
        f"inverted {n} image(s) in {result.seconds:.1f}s ({result.seconds / n:.2f}s each, "
        f"{result.steps} steps from the {result.start} start; mean PSNR "
        f"{float(result.psnr.mean()):.2f} dB)"
    )
    return 0


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Register `pixelsmith edit invert`."""
    from pixelsmith.edit.latent.invert import DEFAULT_ENCODER_STEPS, PERCEPTUAL, STARTS
    from pixelsmith.edit.latent.space import SPACES

    p = actions.add_parser(
        "invert", help="find a generator's latent code of a real image", description=_ABOUT
    )
    p.add_argument(
        "model", metavar="RUN", help="a gan, stylegan or vae run, checkpoint or zoo:NAME"
    )
    p.add_argument("input", metavar="IMAGE|FOLDER", help="an image, or a folder (recursive)")
    p.add_argument(
        "-o",
        "--out",
        required=True,
        help="OUT for one image (writes OUT.png and OUT.safetensors), a folder for a folder",
    )
    p.add_argument("--space", choices=SPACES, help="z, w or w+ (StyleGAN; default w+), z otherwise")
    p.add_argument("--steps", type=int, default=200, help="optimisation steps (0: encoder only)")
    p.add_argument("--start", choices=STARTS, default="encoder", help="where the search starts")
    p.add_argument(
        "--perceptual",
        choices=PERCEPTUAL,
        default="auto",
        help="feature loss: auto (the shipped classifier for 28x28 grey models, else Inception)",
    )
    p.add_argument("--label", type=int, metavar="K", help="the class, for a conditional model")
    p.add_argument(
        "--encoder-steps",
        type=int,
        default=DEFAULT_ENCODER_STEPS,
        help=f"training steps of the encoder, trained once per model and cached "
        f"(default {DEFAULT_ENCODER_STEPS})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random start")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-pixels", type=int, help="refuse images above this many pixels (memory)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_run)
