"""`pixelsmith edit style IN --style STYLE -o OUT`: neural style transfer on files, following
jobs.plan (an image or a folder; each result in its content's size, mode and alpha)."""

from __future__ import annotations

from pathlib import Path

from pixelsmith.edit import style as st
from pixelsmith.edit.photo import read_photo, write_photo
from pixelsmith.errors import UserError
from pixelsmith.imageio import probe_image
from pixelsmith.jobs.files import Log, Progress, each_photo
from pixelsmith.jobs.plan import check_alpha, plan


def style_files(
    content: str | Path,
    style: str | Path,
    out: str | Path,
    steps: int = st.STEPS,
    size: int = st.SIZE,
    style_weight: float = st.STYLE_WEIGHT,
    content_weight: float = st.CONTENT_WEIGHT,
    tv_weight: float = st.TV_WEIGHT,
    lr: float = st.LR,
    seed: int = 0,
    init: str = "content",
    progress: st.Progress | None = None,
    cap: int | None = None,
    log: Log | None = None,
) -> list[Path]:
    """Restyle the image file (or folder) `content` after `style`; returns the files written.

    Everything is checked before the optimisation starts: the options, every header, each
    output's format (and that it can hold its content's alpha, which is kept as it is), that no
    output is an input, and the Inception weights.
    """
    st.check_options(steps, size, style_weight, content_weight, tv_weight, lr)
    if init not in ("content", "noise"):
        raise UserError(f"init must be 'content' or 'noise', got {init!r}")
    probe_image(style, cap)
    p = plan(content, out, inputs=[style], cap=cap)
    for item in p.items:
        check_alpha(item)
    st.load_network()
    style_colour = read_photo(style, cap).colour  # the style's alpha, if any, plays no part
    written = []
    for item, photo in each_photo(p, Progress(len(p), log), cap):
        result = st.style_transfer(
            photo.colour,
            style_colour,
            steps=steps,
            size=size,
            style_weight=style_weight,
            content_weight=content_weight,
            tv_weight=tv_weight,
            lr=lr,
            seed=seed,
            init=init,
            progress=progress,
        )
        written.append(write_photo(photo.with_pixels(result), item.target))
    p.say_skipped()
    return written
