"""`pixelsmith attack MODEL IN -o OUT` on files (following jobs.plan) or on a data set's test
split: each image in the classifier's input form, its adversarial image written as PNG (a lossy
format would change the perturbation), and per image the labels and the change's norms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pixelsmith.edit.photo import Photo, write_photo
from pixelsmith.edit.translate import model_input
from pixelsmith.errors import UserError
from pixelsmith.jobs.files import Log, Progress, each_photo
from pixelsmith.jobs.plan import plan
from pixelsmith.robust import attack as atk
from pixelsmith.robust.models import Classifier, check_logits


def _photo(x: Tensor) -> Photo:
    return Photo(x.clamp(0, 1), None, False, "L" if x.shape[0] == 1 else "RGB")


def attack_files(
    model: Classifier, src: str | Path, out: str | Path, settings: atk.AttackSettings,
    cap: int | None = None, log: Log | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Attack each image of a file or folder; an image's label is the model's own clean
    prediction (untargeted: move it away from that). Returns one report entry per image."""
    settings.check()
    p = plan(src, out, suffix=".png", cap=cap)
    rows = []
    for item, photo in each_photo(p, Progress(len(p), log), cap):
        x = (
            model_input(photo.colour, model.image_shape)
            if model.image_shape
            else photo.colour[None]
        )
        check_logits(model, x)
        with torch.no_grad():
            y = model(x).argmax(1)
        adv = atk.run(model, x, y, settings)
        write_photo(_photo(adv[0]), item.target)
        rows.append({"file": str(item.source), "out": str(item.target),
                     **atk.report(model, x, adv, y)[0]})  # fmt: skip
    p.say_skipped()
    return rows


def attack_data(
    model: Classifier, data: str, n: int, out: str | Path, settings: atk.AttackSettings,
    log: Log | None = None, batch: int = 250,
) -> list[dict[str, Any]]:  # fmt: skip
    """Attack the first n test images of a labelled data set; writes OUT/00000.png ..."""
    from pixelsmith.data.sources import load_images

    settings.check()
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out} is a file; attacking a data set writes a folder of images")
    c, h, w = model.image_shape or (None, None, None)
    s = load_images(data, split="test", channels=c, size=(h, w) if h else None, limit=n)
    if s.labels is None:
        raise UserError(f"{data} has no labels; attacking a data set needs a labelled one")
    x, y = s.images.float() / 255, s.labels.long()
    check_logits(model, x[:1])
    rows = []
    for i in range(0, len(x), batch):
        adv = atk.run(model, x[i : i + batch], y[i : i + batch], settings)
        for j, r in enumerate(atk.report(model, x[i : i + batch], adv, y[i : i + batch])):
            target = write_photo(_photo(adv[j]), out / f"{i + j:05d}.png")
            rows.append({"index": i + j, "out": str(target), **r})
        if log:
            log(f"[{min(i + batch, len(x))}/{len(x)}] attacked")
    return rows


def is_generator(spec: str | Path) -> bool:
    """Whether a model name or path names a generator with a latent space to invert into."""
    from pixelsmith.generate import load_model

    try:
        return bool(load_model(str(spec)).abilities.latent)
    except UserError:
        return False


def attack_encoder_files(
    model: str | Path, src: str | Path, out: str | Path, eps: float, steps: int, *,
    space: str | None = None, label: int | None = None, seed: int = 0,
    encoder_steps: int | None = None, cap: int | None = None, log: Log | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Attack inversion's start (`robust.latent.attack_encoder`) on each image of a file or
    folder, read at the generator's image shape as `pixelsmith invert` reads it; the attacked
    images are written as PNG at that shape. One report row per image."""
    from pixelsmith.edit.latent.invert import DEFAULT_ENCODER_STEPS, read_targets
    from pixelsmith.edit.latent.space import latent_space
    from pixelsmith.generate import load_model
    from pixelsmith.robust.image_pgd import check_eps
    from pixelsmith.robust.latent import attack_encoder

    eps = check_eps(eps)
    lat = latent_space(load_model(str(model)), space)
    if (label is None) != (not lat.classes):
        raise UserError(
            f"this conditional model needs --label K (0-{lat.classes - 1})"
            if lat.classes
            else "this generator is unconditional, so it takes no --label"
        )
    p = plan(src, out, suffix=".png", cap=cap)
    items, images, notes = [], [], []
    for item, _photo_read in each_photo(p, Progress(len(p), log), cap):
        x, said = read_targets(lat, [item.source])
        items, images, notes = [*items, item], [*images, x], [*notes, said[0]]
    labels = None if label is None else torch.full((len(items),), int(label))
    result = attack_encoder(lat, torch.cat(images), eps, steps, labels=labels, seed=seed,
                            encoder_steps=encoder_steps or DEFAULT_ENCODER_STEPS,
                            progress=log)  # fmt: skip
    rows = []
    for i, (item, row) in enumerate(zip(items, result.rows(), strict=True)):
        write_photo(_photo(result.images[i]), item.target)
        rows.append({"file": str(item.source), "out": str(item.target), "read": notes[i], **row})
    p.say_skipped()
    return rows
