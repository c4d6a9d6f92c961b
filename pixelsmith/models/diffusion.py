"""Denoising diffusion: a U-Net trained to predict the noise (DDPM, Ho et al. 2020), linear or
cosine (Nichol & Dhariwal 2021) noise schedules, the DDPM ancestral sampler and the DDIM sampler
(Song et al. 2020), and class-conditional sampling with classifier-free guidance (Ho & Salimans).

Conventions: timesteps t = 0 .. T-1; alpha_bar[t] = prod_{s<=t} (1 - beta[s]); the forward process
is q(x_t | x_0) = N(sqrt(alpha_bar[t]) x_0, (1 - alpha_bar[t]) I) with x_0 in [-1, 1]. Both
samplers walk an evenly spaced subsequence of `steps` timesteps from T-1 down to 0, predict x_0
from the noise estimate at each step, clip it to [-1, 1] (the data range: this keeps few-step and
early-training samples from blowing up) and re-derive the noise estimate from the clipped x_0, as
improved-diffusion does. DDPM with fewer steps than T is ancestral sampling on the respaced
schedule (Nichol & Dhariwal, section 4); DDIM with eta = 1 on the full schedule is DDPM.

CPU cost, 28x28 grey, measured with 1 thread on the 2 Zen 3 cores of a build machine busy with
other jobs (an idle one is faster): with the `small` preset (114 MFLOP per network call) DDIM-50
takes about 0.3 s per image and DDPM-1000 8-12 s per image (cost is linear in the steps: 20x);
the default config (71 MFLOP) takes about 0.16 s per image with DDIM-50.

Reads top to bottom: config, noise schedules, the sampler step rules, the family.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family, GradSync
from pixelsmith.models.unet import UNet
from pixelsmith.utils.rng import BatchRandom

SCHEDULES = ("linear", "cosine")
SAMPLERS = ("ddpm", "ddim")
SAMPLE_BATCH = 256


@dataclass
class DiffusionConfig:
    """Settings of the diffusion family."""

    channels: int = 16
    # Width multiplier per resolution, comma separated; len - 1 halvings (28 -> 14 -> 7).
    channel_mult: str = "1,2,2"
    blocks: int = 1
    attention: bool = True
    timesteps: int = 1000
    schedule: str = "cosine"
    sampler: str = "ddim"
    sample_steps: int = 50
    eta: float = 0.0
    conditional: bool = False
    p_uncond: float = 0.1
    guidance: float = 2.0
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def mult(self) -> tuple[int, ...]:
        """channel_mult as integers."""
        try:
            out = tuple(int(v) for v in self.channel_mult.split(","))
        except ValueError:
            out = ()
        require(
            len(out) > 0 and all(m > 0 for m in out),
            f"model.channel_mult must be positive integers separated by commas (e.g. 1,2,2), "
            f"got {self.channel_mult!r}",
        )
        return out

    def validate(self) -> None:
        """Raise UserError on impossible settings."""
        self.mult()
        for key in ("channels", "blocks", "timesteps", "sample_steps"):
            v = getattr(self, key)
            require(v > 0, f"model.{key} must be a positive integer, got {v}")
        require(self.timesteps >= 2, f"model.timesteps must be at least 2, got {self.timesteps}")
        require(
            self.schedule in SCHEDULES,
            f"model.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}",
        )
        require(
            self.sampler in SAMPLERS,
            f"model.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}",
        )
        check_steps(self.sample_steps, self.timesteps)
        require(self.eta >= 0, f"model.eta must be >= 0, got {self.eta}")
        require(0 <= self.p_uncond < 1, f"model.p_uncond must be in [0, 1), got {self.p_uncond}")
        require(self.guidance >= 0, f"model.guidance must be >= 0, got {self.guidance}")
        require(self.lr > 0, f"model.lr must be positive, got {self.lr}")
        require(self.grad_clip >= 0, f"model.grad_clip must be >= 0, got {self.grad_clip}")


def check_steps(steps: int, timesteps: int) -> None:
    """Raise UserError unless 1 <= steps <= timesteps."""
    require(
        1 <= steps <= timesteps,
        f"sampling steps must be between 1 and model.timesteps={timesteps}, got {steps}",
    )


# ---- noise schedules -------------------------------------------------------------------------


def linear_betas(timesteps: int) -> torch.Tensor:
    """DDPM's betas, 1e-4 .. 0.02 at T = 1000, scaled by 1000 / T for other T, at most 0.999."""
    scale = 1000.0 / timesteps
    betas = torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    return betas.clamp(max=0.999)


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal: alpha_bar(t) = f(t) / f(0), f(t) = cos((t/T + s) / (1 + s) * pi/2)^2."""
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


def alpha_bar(schedule: str, timesteps: int) -> torch.Tensor:
    """alpha_bar[t] = prod_{s<=t} (1 - beta[s]) for t = 0 .. T-1 (float64)."""
    betas = linear_betas(timesteps) if schedule == "linear" else cosine_betas(timesteps)
    return torch.cumprod(1 - betas, dim=0)


def q_sample(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, ab: torch.Tensor
) -> torch.Tensor:
    """x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise: a draw from q(x_t | x_0)."""
    a = ab.to(x0.device, x0.dtype)[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def timestep_sequence(steps: int, timesteps: int) -> list[int]:
    """`steps` evenly spaced timesteps from T-1 down to 0 (all of them when steps == T)."""
    if steps == 1:
        return [timesteps - 1]
    return sorted({round(i * (timesteps - 1) / (steps - 1)) for i in range(steps)}, reverse=True)


# ---- one step of each sampler: (x_t, eps) -> x_prev, given alpha_bar now and at the next t ---


def predict_x0(
    x: torch.Tensor, eps: torch.Tensor, ab_t: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """x0 from the noise estimate, clipped to [-1, 1], and the noise estimate consistent with it."""
    x0 = ((x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)).clamp(-1, 1)
    eps = (x - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)
    return x0, eps


def ddim_sigma(ab_t: float, ab_prev: float, eta: float) -> float:
    """Song et al. eq. 16: eta * sqrt((1 - ab_prev) / (1 - ab_t)) * sqrt(1 - ab_t / ab_prev)."""
    return eta * math.sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))


def ddim_step(
    x: torch.Tensor,
    eps: torch.Tensor,
    ab_t: float,
    ab_prev: float,
    eta: float,
    noise: torch.Tensor | None,
) -> torch.Tensor:
    """x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z (Song et al. 12)."""
    x0, eps = predict_x0(x, eps, ab_t)
    sigma = ddim_sigma(ab_t, ab_prev, eta)
    out = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
    return out + sigma * noise if sigma > 0 and noise is not None else out


def ddpm_posterior(ab_t: float, ab_prev: float) -> tuple[float, float, float]:
    """q(x_prev | x_t, x0) = N(c0 x0 + ct x_t, var) as (c0, ct, var); beta = 1 - ab_t / ab_prev."""
    beta = 1 - ab_t / ab_prev
    c0 = beta * math.sqrt(ab_prev) / (1 - ab_t)
    ct = (1 - ab_prev) * math.sqrt(1 - beta) / (1 - ab_t)
    return c0, ct, beta * (1 - ab_prev) / (1 - ab_t)


def ddpm_step(
    x: torch.Tensor, eps: torch.Tensor, ab_t: float, ab_prev: float, noise: torch.Tensor | None
) -> torch.Tensor:
    """Ancestral step: a draw from the posterior q(x_prev | x_t, x0 = clipped prediction)."""
    x0, _ = predict_x0(x, eps, ab_t)
    c0, ct, var = ddpm_posterior(ab_t, ab_prev)
    out = c0 * x0 + ct * x
    return out + math.sqrt(var) * noise if var > 0 and noise is not None else out


# ---- the family ------------------------------------------------------------------------------


class Diffusion(Family):
    """DDPM/DDIM with an eps-predicting U-Net; class-conditional with classifier-free guidance."""

    name = "diffusion"
    Config = DiffusionConfig
    ema_pairs = {"net": "net_ema"}
    # 10k DDIM samples for the end-of-run FID take most of an hour on 2 cores: run
    # `pixelsmith eval` when wanted instead (or --set train.eval_at_end=true).
    PRESET_TRAIN = {"train": {"batch": 32, "eval_at_end": False}}
    # `small` (0.53M parameters, 114 MFLOP per call) is meant for `--minutes 30` on 2 cores:
    # garment silhouettes already appear after 240 steps (15k images) of a contended 1-thread run.
    variants = {
        "small": {
            "model": {"channels": 16, "channel_mult": "1,2,4", "lr": 1e-3},
            "train": {"batch": 64},
        }
    }

    def __init__(
        self, cfg: DiffusionConfig, image_shape: tuple[int, int, int], num_classes: int = 0
    ):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        self.classes = self.require_classes(cfg.conditional, "diffusion model")
        c, h, w = self.image_shape
        net = UNet(c, (h, w), cfg.channels, cfg.mult(), cfg.blocks, cfg.attention, self.classes)
        self.networks = {"net": net, "net_ema": copy.deepcopy(net).requires_grad_(False).eval()}
        self.alpha_bar = alpha_bar(cfg.schedule, cfg.timesteps)

    def configure_optimizers(self) -> None:
        """Adam on the U-Net."""
        net = self.networks["net"]
        self.optimizers = {
            "net": torch.optim.Adam(
                net.parameters(), self.cfg.lr, betas=self.cfg.betas, foreach=True
            )
        }

    def train_step(
        self,
        real: torch.Tensor,
        labels: torch.Tensor | None,
        rng: BatchRandom,
        step: int,
        next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor | None]],
        sync: GradSync,
    ) -> dict[str, float]:
        """One Adam step on the simple loss; logs "loss"."""
        net, opt = self.networks["net"], self.optimizers["net"]
        loss = self.loss(real, labels, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sync(net)
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), self.cfg.grad_clip, foreach=True)
        opt.step()
        return {"loss": loss.item()}

    def loss(
        self, real: torch.Tensor, labels: torch.Tensor | None, rng: BatchRandom
    ) -> torch.Tensor:
        """Simple loss ||eps - eps_theta(x_t, t, y)||^2, uniform t, labels dropped at p_uncond."""
        c = self.cfg
        n = real.shape[0]
        t = rng.randint(c.timesteps, n)
        noise = rng.randn(n, *self.image_shape)
        y = None
        if self.classes:
            drop = rng.rand(n) < c.p_uncond
            y = torch.where(drop, torch.full_like(labels, self.classes), labels)
        x_t = q_sample(real * 2 - 1, t, noise, self.alpha_bar)
        return F.mse_loss(self.networks["net"](x_t, t, y), noise)

    def eps(
        self,
        net: nn.Module,
        x: torch.Tensor,
        t: torch.Tensor,
        labels: torch.Tensor | None = None,
        guidance: float = 1.0,
    ) -> torch.Tensor:
        """The noise estimate; conditional: eps_u + guidance * (eps_c - eps_u), one batched pass."""
        if not self.classes or labels is None:
            return net(x, t, None)
        if guidance == 1:
            return net(x, t, labels)
        null = torch.full_like(labels, self.classes)
        both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
        e_cond, e_uncond = both.chunk(2)
        return e_uncond + guidance * (e_cond - e_uncond)

    @torch.no_grad()
    def denoise(
        self,
        x: torch.Tensor,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
        steps: int | None = None,
        eta: float | None = None,
        sampler: str | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """Run the reverse process from x_T = x (in noise space); returns x_0 in [-1, 1].

        Per-step noise comes from `generator` (drawn for the whole batch on the CPU, so results
        do not depend on the internal batch size); DDIM with eta = 0 draws none.
        """
        c = self.cfg
        steps = c.sample_steps if steps is None else int(steps)
        eta = c.eta if eta is None else float(eta)
        sampler = c.sampler if sampler is None else sampler
        guidance = c.guidance if guidance is None else float(guidance)
        check_steps(steps, c.timesteps)
        require(
            sampler in SAMPLERS, f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}"
        )
        require(eta >= 0 and guidance >= 0, "eta and guidance must be >= 0")
        net = self.networks["net_ema"]
        ab = self.alpha_bar.tolist()
        seq = timestep_sequence(steps, c.timesteps)
        x = x.float().to(self.device)
        labels = None if labels is None else labels.to(self.device)
        stochastic = sampler == "ddpm" or eta > 0
        for i, t in enumerate(seq):
            ab_t = ab[t]
            ab_prev = ab[seq[i + 1]] if i + 1 < len(seq) else 1.0
            noise = None
            if stochastic and i + 1 < len(seq):
                noise = torch.randn(x.shape, generator=generator).to(self.device)
            out = []
            for j in range(0, len(x), SAMPLE_BATCH):
                xj = x[j : j + SAMPLE_BATCH]
                tj = torch.full((len(xj),), t, dtype=torch.long, device=self.device)
                yj = None if labels is None else labels[j : j + SAMPLE_BATCH]
                e = self.eps(net, xj, tj, yj, guidance)
                zj = None if noise is None else noise[j : j + SAMPLE_BATCH]
                if sampler == "ddpm":
                    out.append(ddpm_step(xj, e, ab_t, ab_prev, zj))
                else:
                    out.append(ddim_step(xj, e, ab_t, ab_prev, eta, zj))
            x = torch.cat(out)
        return x.cpu()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        seed: int = 0,
        labels: torch.Tensor | None = None,
        steps: int | None = None,
        eta: float | None = None,
        sampler: str | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """n images in [0, 1] from the EMA network; unset options come from the config.

        Conditional models take `labels` (default 0, 1, 2, ... cycling) and `guidance`.
        """
        gen = torch.Generator().manual_seed(int(seed))
        if n <= 0:
            return torch.empty(0, *self.image_shape)
        if self.classes:
            if labels is None:
                labels = torch.arange(n) % self.classes
            labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
            if labels.numel() != n or labels.min() < 0 or labels.max() >= self.classes:
                raise UserError(f"labels must be {n} integers in [0, {self.classes - 1}]")
        else:
            labels = None
        x_T = torch.randn((n, *self.image_shape), generator=gen)
        x0 = self.denoise(x_T, gen, labels, steps, eta, sampler, guidance)
        return ((x0 + 1) / 2).clamp(0, 1)
