"""Model families and their presets: the registry that the CLI, the engine and the loader use.

A preset is a named row of one family's table (`Family.presets`): `pixelsmith train wgan-gp`
is the GAN family with the WGAN-GP row's settings. A family's name also names its first row.
"""

from __future__ import annotations

import importlib

from pixelsmith.errors import UserError
from pixelsmith.models.base import Family, Preset

# family name -> "module:Class"; imported only when used.
FAMILIES: dict[str, str] = {
    "gan": "pixelsmith.models.gan:GAN",
    "vae": "pixelsmith.models.vae:VAE",
    "pixelcnn": "pixelsmith.models.pixelcnn:PixelCNN",
    "diffusion": "pixelsmith.models.diffusion:Diffusion",
    "cyclegan": "pixelsmith.models.cyclegan:CycleGAN",
    "stylegan": "pixelsmith.models.stylegan:StyleGAN",
    "restore": "pixelsmith.models.restore:Restore",
    "distill": "pixelsmith.models.distill:Distill",
    "classifier": "pixelsmith.models.classifier:Classifier",
    "merf": "pixelsmith.models.merf:MERF",
}
_REGISTERED: dict[str, type[Family]] = {}


def register_family(cls: type[Family]) -> type[Family]:
    """Add a Family class to the registry under `cls.name` (usable as a class decorator)."""
    _REGISTERED[cls.name] = cls
    return cls


def families() -> dict[str, type[Family]]:
    """Every available family by name (a family whose optional dependency is absent is left out)."""
    out = {}
    for name, where in FAMILIES.items():
        module, _, cls = where.partition(":")
        try:
            out[name] = getattr(importlib.import_module(module), cls)
        except ModuleNotFoundError as e:
            if e.name != module:  # a missing dependency inside the module is a real error
                raise
    return {**out, **_REGISTERED}


def family_class(name: str) -> type[Family]:
    """The Family class registered under `name`."""
    fams = families()
    if name not in fams:
        raise UserError(f"unknown model family {name!r}; known families: {', '.join(sorted(fams))}")
    return fams[name]


def presets() -> dict[str, tuple[type[Family], Preset]]:
    """Every preset by name, with its family; family names name their first preset too."""
    out: dict[str, tuple[type[Family], Preset]] = {}
    for fam in families().values():
        for name, preset in fam.presets.items():
            if name in out:
                raise RuntimeError(f"preset {name!r} is defined by two families")
            out[name] = (fam, preset)
    for fam in families().values():
        if fam.presets and fam.name not in out:
            out[fam.name] = (fam, next(iter(fam.presets.values())))
    return out


def preset_name(name: str) -> str:
    """The table name of a preset given by itself or by its family's name (gan -> dcgan)."""
    fam, preset = resolve_preset(name)
    return next(k for k, v in fam.presets.items() if v is preset)


def resolve_preset(name: str) -> tuple[type[Family], Preset]:
    """The family and preset for a model name given on the command line."""
    table = presets()
    if name not in table:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(table)}")
    return table[name]
