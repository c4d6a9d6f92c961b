"""One view of every generator's latent space: codes from seeds, and images from codes.

The latent tools (inversion, interpolation, directions, style mixing) work on a `LatentSpace`
and never branch on a family's name: z for the GAN family (with the class for a conditional
one), W or W+ for StyleGAN, z for the VAE (whose encoder gives an exact start).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.models.base import Family

SPACES = ("z", "w", "w+")


@dataclass
class LatentSpace:
    """A family's generator seen as codes -> images; `render` is differentiable in the codes.

    Codes of one image have shape `shape`: (dim,) for z and W, (layers, dim) for W+.
    `interpolation` is "slerp" for Gaussian z and "lerp" for W and W+ (as StyleGAN's W is not
    Gaussian). Images are (N, C, H, W) in [0, 1] (clamped only by `images`, not `render`).
    """

    model: Family
    kind: str
    dim: int
    layers: int = 1
    interpolation: str = "slerp"
    _nets: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.layers, self.dim) if self.kind == "w+" else (self.dim,)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.model.image_shape

    @property
    def classes(self) -> int:
        """Classes the generator is conditioned on (0 for an unconditional one)."""
        return int(self.model.classes)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _z(self, seeds: Sequence[int]) -> Tensor:
        zd = self.model.cfg.z_dim
        return torch.cat(
            [torch.randn(1, zd, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        ).to(self.device)

    def _net(self, name: str) -> torch.nn.Module:
        if name not in self._nets:
            net = self.model.networks.get(self.model.ema_pairs.get(name, name))
            if net is None:
                net = self.model.networks[name]
            self._nets[name] = net.eval().requires_grad_(False)
        return self._nets[name]

    def _map(self, z: Tensor, truncation: float = 1.0) -> Tensor:
        w = self._net("G").mapping(z, truncation)
        return w[:, None].expand(-1, self.layers, -1).clone() if self.kind == "w+" else w

    @torch.no_grad()
    def from_seeds(self, seeds: Sequence[int], truncation: float = 1.0) -> Tensor:
        """Codes of the images `model.sample(1, seed=s)` draws for each seed s (at truncation)."""
        z = self._z(seeds)
        return z if self.kind == "z" else self._map(z, truncation)

    @torch.no_grad()
    def random(self, n: int, seed: int = 0) -> Tensor:
        """n codes drawn from the generator's own prior (z ~ N(0, I), mapped for W / W+)."""
        z = torch.randn(n, self.model.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
        z = z.to(self.device)
        return z if self.kind == "z" else self._map(z)

    @torch.no_grad()
    def mean(self) -> Tensor:
        """The code of the 'average' image, one row: zeros for z, the tracked mean w for W."""
        if self.kind == "z":
            return torch.zeros(1, self.dim, device=self.device)
        w = self._net("G").mapping.w_avg[None].clone()
        return w[:, None].expand(-1, self.layers, -1).clone() if self.kind == "w+" else w

    def to_wplus(self, codes: Tensor) -> Tensor:
        """W codes as W+ (every layer the same); W+ codes unchanged."""
        if self.kind == "w+" or codes.dim() == 3:
            return codes
        if self.kind != "w":
            raise UserError("only StyleGAN's W codes extend to W+")
        return codes[:, None].expand(-1, self.layers_of_model(), -1)

    def layers_of_model(self) -> int:
        """How many style inputs the synthesis network takes (StyleGAN), else 1."""
        G = self._net("G")
        return int(getattr(G, "num_ws", 1))

    def check(self, codes: Tensor) -> Tensor:
        """Codes as (N, *shape) on the model's device, or UserError."""
        codes = torch.as_tensor(codes, dtype=torch.float32)
        if codes.dim() == len(self.shape):
            codes = codes[None]
        if tuple(codes.shape[1:]) != self.shape:
            raise UserError(
                f"latent codes of this model's {self.kind} space have shape "
                f"{tuple(self.shape)}, got {tuple(codes.shape[1:])}"
            )
        return codes.to(self.device)

    def check_labels(self, labels: Tensor | Sequence[int] | None, n: int) -> Tensor | None:
        """One class per image for a conditional generator (required), None otherwise."""
        if not self.classes:
            if labels is not None:
                self.model.check_labels(labels, n)  # raises the family's own message
            return None
        if labels is None:
            raise UserError(
                f"this conditional model needs a class for each image (0-{self.classes - 1})"
            )
        return self.model.check_labels(labels, n).to(self.device)

    def render(self, codes: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images in about [0, 1] from codes, with gradients to the codes (not the weights)."""
        m = self.model
        if m.name == "vae":
            return m.to_image(self._net("vae").decode(codes)).float()
        G = self._net("G")
        if self.kind == "z" and m.name == "stylegan":
            return (G(codes) + 1) / 2
        if self.kind == "z":
            return (G(codes, labels) + 1) / 2
        ws = codes[:, None].expand(-1, self.layers_of_model(), -1) if self.kind == "w" else codes
        return (G.synthesize(ws, "const") + 1) / 2

    @torch.no_grad()
    def images(self, codes: Tensor, labels: Tensor | None = None, batch: int = 256) -> Tensor:
        """Images in [0, 1] from codes, on the CPU, without gradients."""
        codes = self.check(codes)
        out = [
            self.render(codes[i : i + batch], None if labels is None else labels[i : i + batch])
            .clamp(0, 1)
            .cpu()
            for i in range(0, len(codes), batch)
        ]
        return torch.cat(out) if out else torch.empty(0, *self.image_shape)

    def encode_exact(self, images: Tensor) -> Tensor | None:
        """The family's own encoder's code for images (the VAE's posterior mean), else None."""
        if self.model.name != "vae":
            return None
        return self.model._posterior_mean(images).to(self.device)


def latent_space(model: Family, kind: str | None = None) -> LatentSpace:
    """The latent space of a model: z (GAN, VAE) or W / W+ (StyleGAN; default W+).

    Raises UserError for a family without a latent space or a space it does not have.
    """
    if kind is not None and kind not in SPACES:
        raise UserError(f"latent space {kind!r} is not one of {', '.join(SPACES)}")
    cfg = model.cfg
    if model.name == "stylegan":
        kind = kind or "w+"
        if kind == "z":
            return LatentSpace(model, "z", cfg.z_dim, 1, "slerp")
        layers = int(model.networks["G"].num_ws)
        return LatentSpace(model, kind, cfg.w_dim, layers if kind == "w+" else 1, "lerp")
    if model.name in ("gan", "vae"):
        if kind not in (None, "z"):
            raise UserError(f"a {model.name} model has only the z space; W and W+ are StyleGAN's")
        return LatentSpace(model, "z", cfg.z_dim, 1, "slerp" if model.name == "gan" else "lerp")
    raise UserError(
        f"a {model.name} model has no latent space to edit in; the latent tools take gan, "
        "stylegan and vae runs"
    )
