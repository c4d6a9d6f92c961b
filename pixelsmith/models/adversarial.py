"""The adversarial objective shared by the GAN and StyleGAN families, by phase.

As stylegan2-ada's `Loss.accumulate_gradients`, one object holds the discriminator's and the
generator's losses and their regularisers, and one step function runs the phases in order:

- D: `n_critic` updates on (real, fake) scores, each with WGAN-GP's gradient penalty when the
  loss is wgan-gp, and lazy R1 on real images every `r1_every` steps (weighted by r1_every);
- G: one update on the generator's fakes through a frozen D (the D phase's fakes are reused when
  there is one critic update, saving a generator pass), with MSGAN's mode-seeking term when set.

Both inputs of D go through the same differentiable augmentation (DiffAugment) when one is set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.models.base import Batch, StepContext
from pixelsmith.utils.rng import BatchRandom

LOSSES = ("ns", "hinge", "wgan-gp")
Augment = Callable[[Tensor, BatchRandom], Tensor]
# (n, labels or None, rng) -> n fake images in [-1, 1], differentiable w.r.t. G.
MakeFakes = Callable[[int, Tensor | None, BatchRandom], Tensor]


def d_loss(loss: str, real: Tensor, fake: Tensor) -> Tensor:
    """Discriminator loss for real and fake scores."""
    if loss == "ns":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if loss == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return fake.mean() - real.mean()


def g_loss(loss: str, fake: Tensor) -> Tensor:
    """Generator loss for fake scores."""
    return F.softplus(-fake).mean() if loss == "ns" else -fake.mean()


def _scores(d: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
    # float32 logits for the losses, also when D runs in bfloat16 (train.precision=bf16)
    return (d(x) if y is None else d(x, y)).float()


def gradient_penalty(
    d: nn.Module, real: Tensor, fake: Tensor, eps: Tensor, y: Tensor | None = None
) -> Tensor:
    """WGAN-GP: E[(||grad D(x_hat)|| - 1)^2], one mixing weight per sample, no augmentation."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(_scores(d, x_hat, y).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(d: nn.Module, real: Tensor, y: Tensor | None = None) -> Tensor:
    """R1: E[||grad D(real)||^2] (Mescheder et al. 2018)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_scores(d, real, y).sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def identity(x: Tensor, rng: BatchRandom) -> Tensor:  # noqa: ARG001
    """No augmentation."""
    return x


def augmenter(policy: str) -> Augment:
    """DiffAugment with `policy` for both D inputs, or the identity when the policy is empty."""
    if not policy:
        return identity
    from pixelsmith.data.augment import DiffAugment

    return DiffAugment(policy)


@dataclass
class AdversarialLoss:
    """The losses of D and G and their regularisers, evaluated phase by phase."""

    loss: str = "ns"
    augment: Augment = identity
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    r1_every: int = 16
    # Real and fake images through D in one pass; False when D mixes the samples of a batch
    # (StyleGAN's minibatch standard deviation), so each set is scored on its own.
    joint: bool = True
    # The weight of a mode-seeking term after MSGAN (Mao et al. 2019): G is also rewarded for
    # drawing pairs of the same class apart, that paper's cure for within-class collapse.
    mode_seeking: float = 0.0

    def d_phase(
        self,
        D: nn.Module,
        real: Tensor,
        fake: Tensor,
        y: Tensor | None,
        ctx: StepContext,
        y_fake: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """D's loss on real and (detached) fake images in [-1, 1], with GP and lazy R1; the
        fakes carry the real images' labels unless `y_fake` gives theirs."""
        rng, n = ctx.rng, real.shape[0]
        y_fake = y if y_fake is None else y_fake
        if self.joint:
            both = torch.cat([self.augment(real, rng), self.augment(fake.detach(), rng)])
            scores = _scores(D, both, None if y is None else torch.cat([y, y_fake]))
            s_real, s_fake = scores[:n], scores[n:]
        else:
            s_real = _scores(D, self.augment(real, rng), y)
            s_fake = _scores(D, self.augment(fake.detach(), rng), y_fake)
        loss = d_loss(self.loss, s_real, s_fake)
        logs = {"D": loss.item()}
        if self.loss == "wgan-gp":
            gp = gradient_penalty(D, real, fake.detach(), rng.rand(n, 1, 1, 1), y)
            loss = loss + self.gp_weight * gp
            logs["gp"] = gp.item()
        if self.r1_gamma > 0 and ctx.step % self.r1_every == 0:
            r1 = r1_penalty(D, real, y)
            loss = loss + 0.5 * self.r1_gamma * self.r1_every * r1
            logs["r1"] = r1.item()
        logs["D_real"], logs["D_fake"] = s_real.mean().item(), s_fake.mean().item()
        return loss, logs

    def g_phase(
        self, D: nn.Module, fake: Tensor, y: Tensor | None, rng: BatchRandom
    ) -> tuple[Tensor, dict[str, float]]:
        """G's loss on its fakes through D (whose weights the caller freezes); with mode seeking,
        the fakes come in pairs of one class (`paired`)."""
        loss = g_loss(self.loss, _scores(D, self.augment(fake, rng), y))
        logs = {"G": loss.item()}
        if self.mode_seeking > 0:
            h = fake.shape[0] // 2
            # MSGAN divides a pair's image distance by its latent distance; for independent
            # N(0, I) codes that is close to its mean 2 / sqrt(pi) per dimension, used here.
            gap = (fake[:h] - fake[h : 2 * h]).abs().flatten(1).mean(1) / (2 / math.pi**0.5)
            # Per pair, not MSGAN's ratio of batch means: a class drawn as one image is a few
            # pairs of a batch, which the batch mean hardly sees; 1 / (gap + 0.1) weighs them
            # most and stays bounded (docs/gan_quality.md measured both).
            seek = (1 / (gap + 0.1)).mean()
            loss = loss + self.mode_seeking * seek
            logs["mode_seeking"] = seek.item()
        return loss, logs


def paired(y: Tensor) -> Tensor:
    """Labels whose second half repeats the first, so fakes i and i + n // 2 share a class."""
    h = y.shape[0] // 2
    return torch.cat([y[:h], y[:h], y[2 * h :]])


def _update(opt: torch.optim.Optimizer, loss: Tensor, net: nn.Module, ctx: StepContext) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    ctx.sync(net)
    opt.step()


def adversarial_step(
    objective: AdversarialLoss,
    G: nn.Module,
    D: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    make_fakes: MakeFakes,
    batch: Batch,
    ctx: StepContext,
    conditional: bool = False,
    n_critic: int = 1,
    classes: int = 0,
) -> dict[str, float]:
    """n_critic D updates (each on a new real batch after the first), then one G update.

    The fakes match the real batch in count and labels, except in a private run
    (`ctx.private_batch`): there a step draws that many fakes with uniformly random labels, so
    that no fake depends on which real images the batch holds.
    """
    private = ctx.private_batch is not None
    n = ctx.private_batch if private else batch.images.shape[0]
    logs: dict[str, float] = {}
    reuse = n_critic == 1
    y = y_fake = None
    for i in range(n_critic):
        if i > 0:
            batch = ctx.next_batch()
        y = batch.labels if conditional else None
        y_fake = (
            ctx.rng.randint(classes, n).to(batch.images.device) if private and conditional else y
        )
        if y_fake is not None and objective.mode_seeking > 0:
            y_fake = paired(y_fake)
        fake = make_fakes(n, y_fake, ctx.rng)
        if not reuse:
            fake = fake.detach()
        loss, d_logs = objective.d_phase(D, batch.images * 2 - 1, fake, y, ctx, y_fake)
        _update(optimizers["D"], loss, D, ctx)
        logs.update(d_logs)
    if not reuse:
        fake = make_fakes(n, y_fake, ctx.rng)
    with ctx.freeze(D):  # G's step needs no gradients of D's weights
        loss, g_logs = objective.g_phase(D, fake, y_fake, ctx.rng)
        _update(optimizers["G"], loss, G, ctx)
    return {**logs, **g_logs}
