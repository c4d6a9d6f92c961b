"""`pixelsmith edit invert RUN IN -o OUT` on files, following jobs.plan: each image gets
STEM.png (its reconstruction) and STEM.safetensors (its code), OUT being the stem for one image
(`-o shirt`, or `-o shirt.png`) and a folder for a folder (or an existing folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pixelsmith.edit.latent.encoder import Progress
from pixelsmith.edit.latent.invert import (
    DEFAULT_ENCODER_STEPS,
    STARTS,
    InvertResult,
    choose_perceptual,
    invert,
    read_targets,
    save_code,
)
from pixelsmith.edit.latent.space import latent_space
from pixelsmith.errors import UserError
from pixelsmith.generate import load_model
from pixelsmith.imageio import save_image
from pixelsmith.jobs.plan import plan, short_reason

OUTPUTS = (".png", ".safetensors")


def invert_files(
    model: str | Path,
    src: str | Path,
    out: str | Path,
    space: str | None = None,
    steps: int = 200,
    start: str = "encoder",
    perceptual: str = "auto",
    label: int | None = None,
    seed: int = 0,
    encoder_steps: int = DEFAULT_ENCODER_STEPS,
    device: str = "cpu",
    cap: int | None = None,
    progress: Progress | None = None,
) -> tuple[InvertResult, list[dict[str, Any]]]:
    """Invert an image file or a folder of them with a run, checkpoint or zoo:NAME generator.

    Every input is checked before the encoder trains or anything is written. Returns the result
    and, per image, {source, png, code, psnr, ssim, feature_distance}.
    """
    if steps < 0:
        raise UserError(f"--steps must be >= 0, got {steps}")
    if encoder_steps < 0:
        raise UserError(f"--encoder-steps must be >= 0, got {encoder_steps}")
    if start not in STARTS:
        raise UserError(f"--start must be one of {', '.join(STARTS)}, got {start!r}")
    p = plan(src, out, outputs="stem", suffixes=OUTPUTS, cap=cap)
    generator = load_model(model, device=device)
    lat = latent_space(generator, space)
    if label is not None and not lat.classes:
        raise UserError(f"this {generator.name} model is unconditional, so it takes no --label")
    if label is None and lat.classes:
        raise UserError(
            f"this conditional model needs --label K, the class of the images (0-{lat.classes - 1})"
        )
    choose_perceptual(lat, perceptual)
    say = progress or (lambda _m: None)
    images, items = [], []
    for item in p.items:  # a file whose data cannot be read is skipped, like its header
        try:
            x, notes = read_targets(lat, [item.source])
        except UserError as e:
            if p.single:
                raise
            p.skip(short_reason(e, item.source))
            continue
        images.append(x)
        items.append(item)
        say(f"  {notes[0]}")
    labels = None if label is None else [int(label)] * len(items)
    lat.check_labels(labels, len(items))
    c, h, w = lat.image_shape
    say(f"model: {generator.name}, {lat.kind} space {tuple(lat.shape)}, images {c}x{h}x{w}")
    result = invert(
        lat,
        torch.cat(images),
        labels,
        steps=steps,
        start=start,
        perceptual=perceptual,
        seed=seed,
        progress=progress,
        encoder_steps=encoder_steps,
    )
    rows = []
    for i, item in enumerate(items):
        png, code = (item.output(suffix=s) for s in OUTPUTS)
        png.parent.mkdir(parents=True, exist_ok=True)
        save_image(result.images[i], png)
        save_code(
            code,
            lat,
            result.codes[i : i + 1],
            None if result.labels is None else result.labels[i : i + 1],
            model=str(model),
            steps=steps,
            start=result.start,
            perceptual=result.perceptual,
            loss=[float(result.history[-1, i])],
            psnr=[float(result.psnr[i])],
            ssim=[float(result.ssim[i])],
            sources=[item.source.name],
        )
        rows.append(
            {
                "source": str(item.source),
                "png": str(png),
                "code": str(code),
                "psnr": float(result.psnr[i]),
                "ssim": float(result.ssim[i]),
                "feature_distance": float(result.feature_distance[i]),
            }
        )
    p.say_skipped()
    return result, rows
