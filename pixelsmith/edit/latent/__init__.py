"""Latent editing: inversion, interpolation, directions and style mixing on any generator."""

from pixelsmith.edit.latent.directions import Direction, apply, label_direction, pca_directions
from pixelsmith.edit.latent.interpolate import interpolate, lerp, slerp, strip, write_animation
from pixelsmith.edit.latent.mixing import mix, mix_grid
from pixelsmith.edit.latent.space import SPACES, LatentSpace, latent_space

__all__ = [
    "SPACES",
    "Direction",
    "LatentSpace",
    "apply",
    "interpolate",
    "label_direction",
    "latent_space",
    "lerp",
    "mix",
    "mix_grid",
    "pca_directions",
    "slerp",
    "strip",
    "write_animation",
]
