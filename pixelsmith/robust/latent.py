"""An attack on the encoder that starts latent inversion (`pixelsmith.edit.latent.invert`).

Inversion starts from an encoder's guess of a photo's code: the cached encoder `encoder_for`
trains on the generator's own samples, or the family's exact one (the VAE's posterior mean).
`attack_encoder` runs Linf PGD on the photo that moves that guess as far as it can, measured as
the RMS change of the code in units of the codes' spread (the standard deviation of prior codes
over their dimensions), and reports what the move does to the start: the PSNR of the generator's
rendering of the guessed code against the photo, clean and attacked, beside a random-sign change
of the full budget. A photo whose start no longer resembles it is harder to edit in latent space;
the optimisation that follows the start can recover some of it, which `pixelsmith invert` on the
attacked image shows.

Images are float (N, C, H, W) or (C, H, W) in [0, 1] at the generator's image shape (files are
read at it by `invert.read_targets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pixelsmith.edit.latent.encoder import Progress, encoder_for
from pixelsmith.edit.latent.invert import DEFAULT_ENCODER_STEPS, check_images
from pixelsmith.edit.latent.space import LatentSpace
from pixelsmith.robust.image_pgd import (
    Tick,
    batched,
    check_eps,
    check_steps,
    image_psnr,
    linf_pgd,
    random_signs,
    value_and_grad,
)


@dataclass
class EncoderAttack:
    """An attack on inversion's start: the images, the code moves and the starts' PSNRs."""

    images: Tensor  # the adversarial inputs, as x came
    eps: float
    psnr: Tensor  # (N,) attacked input against the original, dB
    shift: Tensor  # (N,) RMS code change over the codes' spread
    shift_random: Tensor  # (N,) the same for a random-sign change of the full budget
    start_psnr: Tensor  # (N,) render(E(x)) against x
    start_psnr_attacked: Tensor  # (N,) render(E(x_adv)) against x_adv
    start_psnr_random: Tensor  # (N,) render(E(x_rand)) against x_rand

    def rows(self) -> list[dict[str, Any]]:
        """Per image, JSON-ready."""
        return [
            {
                "eps": self.eps,
                "psnr": round(float(self.psnr[i]), 2),
                "code_shift": round(float(self.shift[i]), 4),
                "code_shift_random": round(float(self.shift_random[i]), 4),
                "start_psnr": round(float(self.start_psnr[i]), 2),
                "start_psnr_attacked": round(float(self.start_psnr_attacked[i]), 2),
                "start_psnr_random": round(float(self.start_psnr_random[i]), 2),
            }
            for i in range(len(self.psnr))
        ]


def _spread(space: LatentSpace) -> float:
    """The codes' standard deviation over their dimensions (RMS), from 1024 prior draws."""
    draws = space.random(1024, seed=104729).float()
    return float(draws.std(0).square().mean().sqrt())


def start_encoder(
    space: LatentSpace, encoder_steps: int = DEFAULT_ENCODER_STEPS, progress: Progress | None = None
) -> Callable[[Tensor], Tensor]:
    """What inversion starts from, as a differentiable images -> codes function: the family's
    exact encoder where it has one, else the cached (or newly trained) `encoder_for`."""
    probe = torch.zeros(1, *space.image_shape)
    if space.encode_exact(probe) is not None:
        return lambda v: space.encode_exact(v)  # type: ignore[return-value]
    enc, _ = encoder_for(space, encoder_steps, seed=0, progress=progress)
    return lambda v: enc(v.to(space.device))


def attack_encoder(
    space: LatentSpace,
    x: Tensor,
    eps: float = 8 / 255,
    steps: int = 50,
    *,
    labels: Tensor | None = None,
    encoder_steps: int = DEFAULT_ENCODER_STEPS,
    seed: int = 0,
    tick: Tick | None = None,
    progress: Progress | None = None,
) -> EncoderAttack:
    """PGD (Linf) that moves inversion's start for x as far as it can (see the module doc)."""
    eps, steps = check_eps(eps), check_steps(steps)
    xb, single = batched(x)
    xb = check_images(space, xb)
    labels = space.check_labels(labels, len(xb))
    encode = start_encoder(space, encoder_steps, progress)
    spread = _spread(space)
    with torch.no_grad():
        clean = encode(xb).detach()

    def shift(v: Tensor) -> Tensor:
        return (encode(v) - clean).flatten(1).square().mean(1).sqrt() / spread

    def objective(v: Tensor, _step: int, grad: bool) -> tuple[Tensor, Tensor | None]:
        return value_and_grad(shift, v, grad)

    adv = linf_pgd(objective, xb, eps, steps, None, seed, tick) if eps > 0 else xb.clone()
    rand = random_signs(xb, eps, seed)

    def start_psnr(v: Tensor) -> Tensor:
        with torch.no_grad():
            return image_psnr(space.images(encode(v), labels), v.cpu())

    with torch.no_grad():
        moved, moved_random = shift(adv), shift(rand)
    return EncoderAttack(
        adv[0] if single else adv, eps, image_psnr(adv, xb), moved.cpu(), moved_random.cpu(),
        start_psnr(xb), start_psnr(adv), start_psnr(rand),
    )  # fmt: skip
