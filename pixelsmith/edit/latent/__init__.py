"""Latent editing: inversion, interpolation, directions and style mixing on any generator whose
family declares a latent space (`Family.latent_spaces`), from seeds, images or code files."""

from pixelsmith.edit.latent.directions import Direction, apply, label_direction, pca_directions
from pixelsmith.edit.latent.edits import (
    DirectionGrid,
    Interpolation,
    StyleMix,
    direction_grid,
    interpolation,
    mix_sources,
)
from pixelsmith.edit.latent.encoder import Encoder, encoder_for, train_encoder
from pixelsmith.edit.latent.interpolate import (
    interpolate,
    lerp,
    slerp,
    strip,
    tour,
    write_animation,
)
from pixelsmith.edit.latent.invert import InvertResult, invert, load_code, save_code
from pixelsmith.edit.latent.mixing import mix, mix_grid, mixing_space
from pixelsmith.edit.latent.sources import (
    Source,
    codes_of,
    labels_for,
    one_source,
    parse_source,
    saved_labels,
    whole_number,
    whole_numbers,
)
from pixelsmith.edit.latent.space import SPACES, LatentSpace, latent_space

__all__ = [
    "SPACES",
    "Direction",
    "DirectionGrid",
    "Encoder",
    "Interpolation",
    "InvertResult",
    "LatentSpace",
    "Source",
    "StyleMix",
    "apply",
    "codes_of",
    "direction_grid",
    "encoder_for",
    "interpolate",
    "interpolation",
    "invert",
    "label_direction",
    "labels_for",
    "latent_space",
    "lerp",
    "load_code",
    "mix",
    "mix_grid",
    "mix_sources",
    "mixing_space",
    "one_source",
    "parse_source",
    "pca_directions",
    "save_code",
    "saved_labels",
    "slerp",
    "strip",
    "tour",
    "train_encoder",
    "whole_number",
    "whole_numbers",
    "write_animation",
]
