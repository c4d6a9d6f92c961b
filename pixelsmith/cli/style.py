"""`pixelsmith edit style CONTENT --style STYLE -o OUT`: a wrapper over pixelsmith.edit.style."""

from __future__ import annotations

import argparse
import sys
import time


class _Lines:
    """A progress line every `every` steps (and at the last): losses, seconds per step, ETA."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, step: int, steps: int, losses: dict[str, float], seconds: float) -> None:
        if step % self.every and step != steps:
            return
        from pixelsmith.train.progress import fmt_duration

        per = seconds / step
        print(
            f"step {step}/{steps} | style {losses['style']:.4f} content {losses['content']:.4f}"
            f" | {per:.2f} s/step | ETA {fmt_duration(per * (steps - step))}",
            file=sys.stderr,
            flush=True,
        )


def _run(args: argparse.Namespace) -> int:
    from pixelsmith.errors import UserError
    from pixelsmith.jobs.style import style_files

    if args.progress_every < 1:
        raise UserError(f"--progress-every must be a positive integer, got {args.progress_every}")
    t0 = time.monotonic()
    paths = style_files(
        args.content,
        args.style,
        args.out,
        steps=args.steps,
        size=args.size,
        style_weight=args.style_weight,
        content_weight=args.content_weight,
        tv_weight=args.tv_weight,
        lr=args.lr,
        seed=args.seed,
        init=args.init,
        progress=None if args.quiet else _Lines(args.progress_every),
        cap=args.max_pixels,
        log=None if args.quiet else lambda m: print(m, file=sys.stderr, flush=True),
    )
    where = paths[0] if len(paths) == 1 else f"{len(paths)} images in {args.out}"
    print(f"wrote {where} ({time.monotonic() - t0:.0f} s)")
    return 0


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Register `pixelsmith edit style`."""
    from pixelsmith.edit import style as st

    about = (
        "neural style transfer (Gatys et al.): optimise CONTENT so its Inception-v3 Gram "
        "matrices match STYLE's; needs pip install 'pixelsmith[inception]'"
    )
    p = actions.add_parser("style", help="neural style transfer onto an image", description=about)
    p.add_argument("content", metavar="IMAGE|FOLDER", help="the image (or folder) to restyle")
    p.add_argument("--style", required=True, metavar="STYLE", help="the image whose style to take")
    p.add_argument(
        "-o",
        "--out",
        required=True,
        help="output image, or a folder (each in its content's size, mode and alpha)",
    )
    p.add_argument("--steps", type=int, default=st.STEPS, help=f"Adam steps (default {st.STEPS})")
    p.add_argument(
        "--size",
        type=int,
        default=st.SIZE,
        help=f"working long side in pixels (default {st.SIZE}); the result is resized back "
        "to the content's size; time grows with its square",
    )
    p.add_argument(
        "--style-weight",
        type=float,
        default=st.STYLE_WEIGHT,
        help=f"weight of the style loss (default {st.STYLE_WEIGHT:g})",
    )
    p.add_argument(
        "--content-weight",
        type=float,
        default=st.CONTENT_WEIGHT,
        help=f"weight of the content loss (default {st.CONTENT_WEIGHT:g}; higher keeps more "
        "of the content)",
    )
    p.add_argument(
        "--tv-weight",
        type=float,
        default=st.TV_WEIGHT,
        help=f"total-variation weight (smoothing; default {st.TV_WEIGHT:g})",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=st.LR,
        help=f"Adam step size on [0, 1] pixels (default {st.LR:g})",
    )
    p.add_argument(
        "--init",
        choices=["content", "noise"],
        default="content",
        help="start from the content image (default) or from noise",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the per-step shifts and of --init noise"
    )
    p.add_argument("--progress-every", type=int, default=10, help="a progress line every N steps")
    p.add_argument("--max-pixels", type=int, help="refuse images above this many pixels (memory)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_run)
