"""One view of every generator's latent space: codes from seeds, and images from codes.

The latent tools (inversion, interpolation, directions, style mixing) work on a `LatentSpace`
and never branch on a family's name: z for the GAN family (with the class for a conditional
one), W or W+ for StyleGAN, z for the VAE (whose encoder gives an exact start).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.models.base import Family, LatentSpec

SPACES = ("z", "w", "w+")


@dataclass
class LatentSpace:
    """A family's generator seen as codes -> images; `render` is differentiable in the codes.

    Codes of one image have shape `shape`: (dim,) for z and W, (layers, dim) for W+.
    `interpolation` is "slerp" for Gaussian z and "lerp" for W and W+ (as StyleGAN's W is not
    Gaussian) and the VAE's z. Images are (N, C, H, W) in [0, 1] (clamped only by `images`,
    not `render`). Everything is asked of the family through its latent contract
    (`Family.latent_spec`, `latent_from_z`, `latent_render`, ...).
    """

    model: Family
    spec: LatentSpec

    def __post_init__(self) -> None:
        # Gradients reach the codes only: the network codes render through is frozen, in eval.
        self.model.inference_net().eval().requires_grad_(False)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def layers(self) -> int:
        return self.spec.layers

    @property
    def interpolation(self) -> str:
        return self.spec.interpolation

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.spec.shape)

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

    @torch.no_grad()
    def from_seeds(self, seeds: Sequence[int], truncation: float = 1.0) -> Tensor:
        """Codes of the images `model.sample(1, seed=s)` draws for each seed s (at truncation)."""
        z = torch.cat([self.model.latent_prior(1, int(s)) for s in seeds]).to(self.device)
        return self.model.latent_from_z(z, self.kind, truncation)

    @torch.no_grad()
    def random(self, n: int, seed: int = 0) -> Tensor:
        """n codes drawn from the generator's own prior (z ~ N(0, I), mapped for W / W+)."""
        z = self.model.latent_prior(n, seed).to(self.device)
        return self.model.latent_from_z(z, self.kind)

    @torch.no_grad()
    def mean(self) -> Tensor:
        """The code of the 'average' image, one row: zeros for z, the tracked mean w for W."""
        return self.model.latent_mean(self.kind)

    def to_wplus(self, codes: Tensor) -> Tensor:
        """W codes as W+ (every layer the same); W+ codes unchanged."""
        if self.layers > 1 or codes.dim() == 3:
            return codes
        layered = [self.model.latent_spec(k) for k in self.model.latent_spaces]
        target = next((s for s in layered if s.layer_of == self.kind), None)
        if target is None:
            raise UserError(
                f"{self.kind} codes of a {self.model.name} model do not extend to per-layer "
                "codes; only StyleGAN's W codes extend to W+"
            )
        return codes[:, None].expand(-1, target.layers, -1)

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
        return self.model.latent_render(codes, self.kind, labels)

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
        codes = self.model.latent_encode(images, self.kind)
        return None if codes is None else codes.to(self.device)


def latent_space(model: Family, kind: str | None = None) -> LatentSpace:
    """The latent space `kind` of a model (default: its family's first, e.g. W+ for StyleGAN,
    z for the GAN and the VAE).

    Raises UserError for a family without a latent space or a space it does not have.
    """
    if kind is not None and kind not in SPACES:
        raise UserError(f"latent space {kind!r} is not one of {', '.join(SPACES)}")
    spaces = model.latent_spaces if model.abilities.latent else ()
    if not spaces:
        raise UserError(
            f"a {model.name} model has no latent space to edit in; the latent tools take "
            "generators with one (gan, stylegan and vae runs)"
        )
    kind = kind or spaces[0]
    if kind not in spaces:
        which = " and ".join(spaces) + (" spaces" if len(spaces) > 1 else " space")
        raise UserError(f"a {model.name} model has only the {which}, not {kind}")
    return LatentSpace(model, model.latent_spec(kind))
