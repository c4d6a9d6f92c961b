"""The Python entry points that the CLI and the server share."""

from __future__ import annotations

from pathlib import Path

import torch

from pixelsmith import config as cfglib
from pixelsmith.errors import UserError
from pixelsmith.models import family_class
from pixelsmith.models.base import Family
from pixelsmith.train import checkpoint as ck


def load_model(
    run_or_checkpoint: str | Path, device: str = "cpu", family: str | None = None
) -> Family:
    """A family instance with trained (EMA) weights from a run folder or checkpoint file."""
    path = ck.resolve_checkpoint(run_or_checkpoint)
    tensors, man = ck.load_checkpoint(path)
    if family is not None and man.get("family") != family:
        raise UserError(f"{path} holds a {man.get('family')} model, not a {family} model")
    fam = family_class(man["family"])
    cfg = fam.Config()
    try:
        cfglib.apply(cfg, man["config"]["model"])
    except UserError as e:
        msg = f"{path} claims a {man['family']} model but its settings do not fit: {e}"
        raise UserError(msg) from None
    model = fam(cfg, tuple(man["image_shape"]), man["num_classes"])
    try:
        ck.load_networks(model.networks, tensors)
    except RuntimeError as e:
        raise UserError(
            f"{path} does not match its own manifest ({str(e).splitlines()[0]})"
        ) from None
    model.manifest = man
    model.checkpoint = path
    return model.to(torch.device(device)).eval()


def sample_to(
    model: Family, n: int, seed: int, out: str | Path, truncation: float | None = None
) -> list[Path]:
    """Sample n images and write a grid (OUT.png) or one PNG per image (a folder).

    `truncation` (psi) is passed to samplers that take it (style-based models); others refuse it.
    """
    import inspect

    from pixelsmith.imageio import save_image, save_images

    if n <= 0:
        raise UserError(f"-n must be a positive number of images, got {n}")
    options = {}
    if truncation is not None:
        if "truncation" not in inspect.signature(model.sample).parameters:
            raise UserError(
                f"the {model.name} model has no truncation trick; leave out --truncation "
                "(it works with style-based models such as stylegan)"
            )
        options["truncation"] = truncation
    out = Path(out)
    if out.suffix and out.suffix.lower() != ".png":
        raise UserError(
            f"output {out} must be a .png file (a grid) or a folder (one PNG per image)"
        )
    images = model.sample(n, seed=seed, **options)
    if out.suffix:
        out.parent.mkdir(parents=True, exist_ok=True)
        nrow = getattr(model, "classes", 0) or None
        return [save_image(images, out, nrow=nrow)]
    return save_images(images, out)


def style_mix_to(
    model: Family,
    rows: int,
    cols: int,
    seed: int,
    out: str | Path,
    truncation: float | None = None,
    crossover: int | None = None,
) -> Path:
    """Write a style-mixing grid to OUT.png: rows from seeds seed.., columns from the next ones.

    Row sources give the coarse styles, column sources the fine ones; the first row and column
    show the sources (see the family's `style_mix`).
    """
    from pixelsmith.imageio import save_image

    if not callable(getattr(model, "style_mix", None)):
        raise UserError(
            f"the {model.name} model cannot mix styles; --style-mix needs a style-based model "
            "such as stylegan"
        )
    if rows <= 0 or cols <= 0:
        raise UserError(f"a style-mixing grid needs at least 1 row and 1 column, got {rows},{cols}")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"a style-mixing grid is one image: give -o a .png file, not {out}")
    grid = model.style_mix(
        list(range(seed, seed + rows)),
        list(range(seed + rows, seed + rows + cols)),
        truncation=1.0 if truncation is None else truncation,
        crossover=crossover,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_image(grid, out, nrow=cols + 1)


def evaluate(
    run_or_checkpoint: str | Path,
    metrics: str = "fid,kid",
    n: int = 10_000,
    features: str = "auto",
    reference: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    reference_n: int | None = None,
):
    """Score a trained model's samples (FID, KID, IS, precision/recall); Scores with cards."""
    from pixelsmith.metrics.evaluate import evaluate_model

    model = load_model(run_or_checkpoint, device=device)
    return evaluate_model(
        model,
        metrics,
        n=n,
        features=features,
        reference=reference,
        seed=seed,
        reference_n=reference_n,
    )
