"""Latent editing: inversion, interpolation, directions and style mixing on any generator."""

from pixelsmith.edit.latent.directions import Direction, apply, label_direction, pca_directions
from pixelsmith.edit.latent.encoder import Encoder, encoder_for, train_encoder
from pixelsmith.edit.latent.interpolate import interpolate, lerp, slerp, strip, write_animation
from pixelsmith.edit.latent.invert import InvertResult, invert, load_code, save_code
from pixelsmith.edit.latent.mixing import mix, mix_grid
from pixelsmith.edit.latent.space import SPACES, LatentSpace, latent_space

__all__ = [
    "SPACES",
    "Direction",
    "Encoder",
    "InvertResult",
    "LatentSpace",
    "apply",
    "encoder_for",
    "interpolate",
    "invert",
    "label_direction",
    "latent_space",
    "lerp",
    "load_code",
    "mix",
    "mix_grid",
    "pca_directions",
    "save_code",
    "slerp",
    "strip",
    "train_encoder",
    "write_animation",
]
