"""Style mixing of any two W+ codes: coarse layers from one, fine layers from the other.

Codes can come from seeds (`LatentSpace.from_seeds`) or from inverted real images, so the mix
works on real images as well as samples. W codes are taken as W+ (every layer the same).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pixelsmith.edit.latent.space import LatentSpace, latent_space
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family


def wplus_space(space: LatentSpace) -> LatentSpace:
    """The space of the model whose codes style-mix (StyleGAN's W+), or UserError for a model
    without styles to mix."""
    if space.spec.mixes:
        return space
    model = space.model
    kind = next((k for k in model.latent_spaces if model.latent_spec(k).mixes), None)
    if kind is None:
        raise UserError(
            f"a {model.name} model has no styles to mix: style mixing needs a StyleGAN "
            "(its W+ codes)"
        )
    return latent_space(model, kind)


def mixing_space(model: Family) -> LatentSpace:
    """The model's space whose codes style-mix, or UserError (no latent space, no styles)."""
    return wplus_space(latent_space(model))


def default_crossover(layers: int) -> int:
    """StyleGAN's usual split: the 4x4 and 8x8 layers (4 W's) are coarse, or half if fewer."""
    return min(4, layers // 2)


def check_crossover(crossover: int | None, layers: int) -> int:
    """The crossover layer (default: `default_crossover`), or UserError outside [0, layers]."""
    if crossover is None:
        return default_crossover(layers)
    if isinstance(crossover, bool) or not isinstance(crossover, int):
        raise UserError(f"the crossover is a whole number of layers, got {crossover!r}")
    if not 0 <= crossover <= layers:
        raise UserError(
            f"the crossover must be between 0 and {layers} (W+ layers), got {crossover}"
        )
    return crossover


def _as_wplus(space: LatentSpace, codes: Tensor) -> Tensor:
    """(dim,) or (N, dim) W codes, or (N, layers, dim) W+ codes, as (N, layers, dim)."""
    codes = torch.as_tensor(codes, dtype=torch.float32)
    if tuple(codes.shape) == (space.layers, space.dim):  # one W+ code, e.g. InvertResult.codes[0]
        codes = codes[None]
    if codes.dim() in (1, 2):
        codes = codes.reshape(-1, codes.shape[-1])[:, None].expand(-1, space.layers, -1)
    if codes.dim() != 3:
        raise UserError(f"W or W+ codes are (N, dim) or (N, layers, dim), got {tuple(codes.shape)}")
    return space.check(codes)


def mix(space: LatentSpace, coarse: Tensor, fine: Tensor, crossover: int | None = None) -> Tensor:
    """W+ codes whose layers [0, crossover) come from `coarse` and the rest from `fine`.

    coarse and fine are W codes (N, dim) or W+ codes (N, layers, dim); either may hold one code
    to pair with every row of the other. crossover 0 gives `fine` exactly, crossover = layers
    gives `coarse`.
    """
    space = wplus_space(space)
    crossover = check_crossover(crossover, space.layers)
    c, f = _as_wplus(space, coarse), _as_wplus(space, fine)
    if len(c) != len(f) and 1 not in (len(c), len(f)):
        raise UserError(f"got {len(c)} coarse codes but {len(f)} fine ones; give as many of each")
    n = max(len(c), len(f))
    c, f = c.expand(n, -1, -1), f.expand(n, -1, -1)
    take = (torch.arange(space.layers, device=c.device) < crossover)[None, :, None]
    return torch.where(take, c, f)


@torch.no_grad()
def mix_grid(
    space: LatentSpace, rows: Tensor, cols: Tensor, crossover: int | None = None
) -> Tensor:
    """The mixing grid as (R + 1) * (C + 1) images, row-major (nrow = C + 1), like
    `StyleGAN.style_mix` but over codes: cell (0, 0) blank (white), row 0 the column sources,
    column 0 the row sources, cell (i, j) the coarse styles of row i with the fine ones of
    column j."""
    space = wplus_space(space)
    crossover = check_crossover(crossover, space.layers)
    r, c = _as_wplus(space, rows), _as_wplus(space, cols)
    codes = [c]
    for i in range(len(r)):
        codes += [r[i : i + 1], mix(space, r[i : i + 1], c, crossover)]
    images = space.images(torch.cat(codes))
    return torch.cat([torch.ones(1, *images.shape[1:]), images])
