"""ScatterNet features (Oyallon and Mallat): fixed wavelet scattering, what Tramer and Boneh
(2021) train private linear models on.

The transform is kymatio's (the `privacy` extra). Only its 2-D torch frontend is imported:
`kymatio.torch` also loads the 3-D frontend, which imports `scipy.special.sph_harm`, gone from
SciPy 1.17. The transform has no weights, so it sits outside the module tree (nothing of it
reaches a state_dict or Opacus's hooks) and is rebuilt from its settings on load.

Scattering costs about 1 ms per 28x28 image on 2 cores, 8 s for a private batch of 8192: far
more than the linear model it feeds. Outside autograd, features are kept per image (keyed by
a hash of its bytes) up to a memory cap, so an epoch of training pays for the transform once.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn

from pixelsmith.errors import UserError

# Paths per input channel of a J=2, L=8 scattering: 1 + J L + L^2 J (J - 1) / 2.
L_ANGLES = 8


def scattering_paths(j: int) -> int:
    """Output channels per input channel of a scattering with j scales and 8 angles."""
    return 1 + j * L_ANGLES + L_ANGLES**2 * j * (j - 1) // 2


class Scattering(nn.Module):
    """(N, C, H, W) images -> (N, C * paths, H / 2^j, W / 2^j) scattering coefficients, with a
    cache of the features of images seen outside autograd (at most `cache_bytes`)."""

    def __init__(self, size: tuple[int, int], j: int = 2, cache_bytes: int = 2 << 30) -> None:
        super().__init__()
        h, w = size
        if h % 2**j or w % 2**j:
            raise UserError(f"{h}x{w} images need sides divisible by {2**j} for scattering")
        self.size, self.j, self.cache_bytes = (h, w), j, cache_bytes
        self._cache: dict[bytes, Tensor] = {}
        self._transform: list = []  # a list: kept out of nn.Module's registry of sub-modules

    def __deepcopy__(self, memo: dict) -> Scattering:
        # A copy (the EMA network, a frozen classifier) starts with an empty cache.
        copy = Scattering(self.size, self.j, self.cache_bytes)
        copy.train(self.training)
        return copy

    def _scatter(self, x: Tensor) -> Tensor:
        if not self._transform:
            try:
                from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D
            except ImportError:
                raise UserError(
                    "ScatterNet classifiers need kymatio: pip install 'pixelsmith[privacy]'"
                ) from None
            self._transform.append(ScatteringTorch2D(J=self.j, shape=self.size, L=L_ANGLES))
        transform = self._transform[0]
        if transform.phi["levels"][0].device != x.device:
            transform.to(x.device)
        out = transform(x.contiguous())  # (N, C, paths, H', W')
        return out.flatten(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """Scattering coefficients of images in [0, 1]."""
        if x.requires_grad:  # an attack differentiates through the transform: no cache
            return self._scatter(x)
        rows = x.detach().cpu().contiguous().view(len(x), -1)
        keys = [hashlib.blake2b(r.numpy().tobytes(), digest_size=16).digest() for r in rows]
        found = [self._cache.get(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            fresh = self._scatter(x[missing]).cpu()
            room = self.cache_bytes // (fresh[0].numel() * fresh.element_size())
            for i, f in zip(missing, fresh, strict=True):
                found[i] = f
                if len(self._cache) < room:
                    self._cache[keys[i]] = f.clone()
        if not found:
            return self._scatter(x)
        return torch.stack(found).to(x.device)
