"""Model families and the presets that name them on the command line."""

from __future__ import annotations

from typing import Any

from pixelsmith.errors import UserError
from pixelsmith.models.base import Family

# family name -> "module:Class"; imported only when used.
FAMILIES: dict[str, str] = {
    "gan": "pixelsmith.models.gan:GAN",
    "vae": "pixelsmith.models.vae:VAE",
    "pixelcnn": "pixelsmith.models.pixelcnn:PixelCNN",
    "diffusion": "pixelsmith.models.diffusion:Diffusion",
    "cyclegan": "pixelsmith.models.cyclegan:CycleGAN",
    "stylegan": "pixelsmith.models.stylegan:StyleGAN",
}


def _families() -> dict[str, type[Family]]:
    import importlib

    out = {}
    for name, where in FAMILIES.items():
        module, _, cls = where.partition(":")
        try:
            out[name] = getattr(importlib.import_module(module), cls)
        except ModuleNotFoundError as e:
            if e.name != module:  # a missing dependency inside the module is a real error
                raise
    return out


# A preset is a family plus settings: `pixelsmith train wgan-gp` = the GAN family with WGAN-GP.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "dcgan": ("gan", {}),
    "gan": ("gan", {}),
    "wgan-gp": (
        "gan",
        {
            "loss": "wgan-gp",
            "n_critic": 5,
            "lr_g": 1e-4,
            "lr_d": 1e-4,
            "betas": (0.0, 0.9),
            "g_norm": "batch",
        },
    ),
    "hinge-gan": ("gan", {"loss": "hinge", "spectral_norm": True}),
    "cgan": ("gan", {"conditional": True}),
    "vae": ("vae", {}),
    "pixelcnn": ("pixelcnn", {}),
    "diffusion": ("diffusion", {}),
    "cyclegan": ("cyclegan", {}),
    "stylegan": ("stylegan", {}),
}


def family_class(name: str) -> type[Family]:
    """The Family class registered under `name`."""
    fams = _families()
    if name not in fams:
        raise UserError(f"unknown model family {name!r}; known families: {', '.join(sorted(fams))}")
    return fams[name]


def resolve_preset(model: str) -> tuple[type[Family], dict[str, Any]]:
    """The family and its preset settings for a model name given on the command line."""
    if model not in PRESETS or PRESETS[model][0] not in _families():
        known = [m for m, (f, _) in PRESETS.items() if f in _families()]
        raise UserError(f"unknown model {model!r}; choose one of: {', '.join(known)}")
    family, settings = PRESETS[model]
    return family_class(family), dict(settings)
