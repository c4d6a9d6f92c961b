"""Latent editing: inversion, interpolation, directions and style mixing on any generator."""

from pixelsmith.edit.latent.space import SPACES, LatentSpace, latent_space

__all__ = ["SPACES", "LatentSpace", "latent_space"]
