"""Denoising diffusion: a U-Net trained to predict the noise (DDPM, Ho et al. 2020), linear or
cosine (Nichol & Dhariwal 2021) noise schedules, the DDPM ancestral sampler, the DDIM sampler
(Song et al. 2020) and DPM-Solver++(2M) (Lu et al. 2022, the default: 15 network calls), and
class-conditional sampling with classifier-free guidance (Ho & Salimans).

Conventions: timesteps t = 0 .. T-1; alpha_bar[t] = prod_{s<=t} (1 - beta[s]); the forward process
is q(x_t | x_0) = N(sqrt(alpha_bar[t]) x_0, (1 - alpha_bar[t]) I) with x_0 in [-1, 1]. Both
samplers walk an evenly spaced subsequence of `steps` timesteps from T-1 down to 0, predict x_0
from the noise estimate at each step, clip it to [-1, 1] (the data range: this keeps few-step and
early-training samples from blowing up) and re-derive the noise estimate from the clipped x_0, as
improved-diffusion does. DDPM with fewer steps than T is ancestral sampling on the respaced
schedule (Nichol & Dhariwal, section 4); DDIM with eta = 1 on the full schedule is DDPM.
DPM-Solver++(2M) integrates the probability-flow ODE in log-SNR with the clipped data prediction,
second order from its second step; its calls are evenly spaced from T-1 down to about T/steps and
its last step lands on clean data (`solver_sequence`), which beat log-SNR and quadratic spacings
on a 30-minute Fashion-MNIST model in a one-off comparison not kept as a benchmark (FID at 10
calls: 22.7 against 25.5 and 28.4, n=1000).

CPU cost, 28x28 grey, measured with 1 thread on the 2 Zen 3 cores of a build machine busy with
other jobs (an idle one is faster): with the `diffusion-30min` preset (114 MFLOP per network
call) DDIM-50 takes about 0.3 s per image and DDPM-1000 8-12 s per image (cost is linear in the
steps: 20x); the default config (71 MFLOP) takes about 0.16 s per image with DDIM-50. The
sampler and its steps are sampling options (`--set sample.steps=25`), not model settings.

Reads top to bottom: config, sampling options, noise schedules, the sampler step rules, the
family (presets, training, samplers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixelsmith.config import require
from pixelsmith.models.base import (
    Batch,
    Family,
    LabelledSampleConfig,
    Preset,
    StepContext,
)
from pixelsmith.models.unet import UNet
from pixelsmith.utils.rng import BatchRandom

SCHEDULES = ("linear", "cosine")
SAMPLERS = ("ddpm", "ddim", "dpm-solver++")
SAMPLE_BATCH = 256
# Network calls per image when sample.steps is unset: DPM-Solver++(2M) at 15 came within 1% of
# 250-step DDIM's FID on a 30-minute model (bench/diffusion_sampling.py; the README's table).
DEFAULT_STEPS = {"ddpm": 50, "ddim": 50, "dpm-solver++": 15}


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
    conditional: bool = False
    # Training drops the label with this probability, so one network also learns the
    # unconditional model that classifier-free guidance needs.
    p_uncond: float = 0.1
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
        for key in ("channels", "blocks", "timesteps"):
            v = getattr(self, key)
            require(v > 0, f"model.{key} must be a positive integer, got {v}")
        require(self.timesteps >= 2, f"model.timesteps must be at least 2, got {self.timesteps}")
        require(
            self.schedule in SCHEDULES,
            f"model.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}",
        )
        require(0 <= self.p_uncond < 1, f"model.p_uncond must be in [0, 1), got {self.p_uncond}")
        require(self.lr > 0, f"model.lr must be positive, got {self.lr}")
        require(self.grad_clip >= 0, f"model.grad_clip must be >= 0, got {self.grad_clip}")


@dataclass
class DiffusionSampleConfig(LabelledSampleConfig):
    """Sampling options of the diffusion family (a score's card records them)."""

    # DPM-Solver++(2M), deterministic, second order; ddim (eta 0: deterministic) and ddpm
    # (ancestral) as the papers have them. Runs saved before the solver keep their ddim.
    sampler: str = "dpm-solver++"
    # Network calls per image: an evenly spaced subsequence of the training timesteps; unset:
    # DEFAULT_STEPS (15 for the solver, 50 for the others), or every timestep of a model
    # trained with fewer.
    steps: int | None = None
    # DDIM's noise: 0 is deterministic given x_T, 1 on the full schedule is DDPM (ddim only).
    eta: float = 0.0
    # Classifier-free guidance for a conditional model (1 = the conditional model alone).
    guidance: float = 2.0

    def check(self, model_cfg: DiffusionConfig) -> None:
        """Refuse unknown samplers, steps beyond the training timesteps and negative weights."""
        require(
            self.sampler in SAMPLERS,
            f"sample.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}",
        )
        timesteps = model_cfg.timesteps
        require(
            self.steps is None or 1 <= self.steps <= timesteps,
            f"sample.steps must be between 1 and the model's {timesteps} timesteps, "
            f"got {self.steps}",
        )
        require(self.eta >= 0, f"sample.eta must be >= 0, got {self.eta}")
        require(self.guidance >= 0, f"sample.guidance must be >= 0, got {self.guidance}")

    def steps_for(self, timesteps: int) -> int:
        """The number of sampling steps for a model trained with `timesteps`."""
        if self.steps is not None:
            return self.steps
        return min(DEFAULT_STEPS.get(self.sampler, 50), timesteps)

    def settings(self, model: Family) -> dict[str, Any]:
        """The options as a card records them: the steps actually taken."""
        return {**super().settings(model), "steps": self.steps_for(model.cfg.timesteps)}


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


def solver_sequence(steps: int, timesteps: int) -> list[int]:
    """`steps` timesteps for a sampler whose last step lands on clean data: evenly spaced from
    T-1 down to about (T-1) / steps, so no network call is spent at t = 0 (all T at steps = T)."""
    if steps >= timesteps:
        return list(range(timesteps - 1, -1, -1))
    return timestep_sequence(steps + 1, timesteps)[:-1]


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


def half_log_snr(ab: float) -> float:
    """lambda = log(alpha / sigma) = log(ab / (1 - ab)) / 2; +inf at ab = 1 (clean data)."""
    return math.inf if ab >= 1 else 0.5 * math.log(ab / (1 - ab))


def dpm_solver_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    ab_t: float,
    ab_next: float,
    prev: tuple[torch.Tensor, float] | None = None,
) -> torch.Tensor:
    """One DPM-Solver++(2M) step (Lu et al. 2022, algorithm 2) from t to the next time.

    x_next = (sigma_next / sigma_t) x + alpha_next (1 - e^-h) D with h = lambda_next - lambda_t.
    D is the clipped data prediction x0 (first order: DDIM's step) or, given the previous step's
    prediction and its alpha_bar as `prev`, the second-order extrapolation
    (1 + 1/2r) x0 - (1/2r) x0_prev with r = h_prev / h. The step to clean data (ab_next = 1)
    is always first order, as the solver's authors advise for few steps: it returns D = x0.
    """
    lam_t, lam_next = half_log_snr(ab_t), half_log_snr(ab_next)
    if math.isinf(lam_next):
        return x0
    h = lam_next - lam_t
    d = x0
    if prev is not None:
        x0_prev, ab_prev = prev
        r = (lam_t - half_log_snr(ab_prev)) / h
        d = (1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
    ratio = math.sqrt((1 - ab_next) / (1 - ab_t))
    return ratio * x + math.sqrt(ab_next) * (-math.expm1(-h)) * d


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


# Runs end with FID/KID at 10k samples like the GANs': DPM-Solver++ draws them in about 6
# minutes on one thread of these CPUs (15 calls each; DDIM-50 took most of an hour).
_TRAIN = {"batch": 32}
PRESETS: dict[str, Preset] = {
    # 71 MFLOP per network call at 28x28: ~0.16 s per image with DDIM-50 (module doc).
    "diffusion": Preset("the default U-Net (16 channels, 1,2,2)", 10.0, {"train": _TRAIN}),
    # 0.53M parameters, 114 MFLOP per call: garment silhouettes already appear after 240 steps
    # (15k images) of a contended 1-thread run. What 30 minutes make: docs/results.md.
    "diffusion-30min": Preset(
        "a wider bottom level (16 channels, 1,2,4) in batches of 64, for 30 minutes on a CPU",
        30.0,
        {
            "model": {"channels": 16, "channel_mult": "1,2,4", "lr": 1e-3},
            "train": {**_TRAIN, "batch": 64},
        },
    ),
}
# Sampling settings that older pixelsmith kept in the model config.
_OLD_SAMPLE_KEYS = {
    "sampler": "sampler",
    "sample_steps": "steps",
    "eta": "eta",
    "guidance": "guidance",
}


class Diffusion(Family):
    """DDPM/DDIM with an eps-predicting U-Net; class-conditional with classifier-free guidance."""

    name = "diffusion"
    Config = DiffusionConfig
    SampleConfig = DiffusionSampleConfig
    presets = PRESETS
    not_exported = (
        "its sampler runs the U-Net once per step in a loop (export covers one-shot generators)"
    )
    ema_pairs = {"net": "net_ema"}

    def __init__(
        self, cfg: DiffusionConfig, image_shape: tuple[int, int, int], num_classes: int = 0
    ):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        self.classes = self.require_classes(cfg.conditional, "diffusion model")
        c, h, w = self.image_shape
        self.networks = {
            "net": UNet(
                c, (h, w), cfg.channels, cfg.mult(), cfg.blocks, cfg.attention, self.classes
            )
        }
        self.alpha_bar = alpha_bar(cfg.schedule, cfg.timesteps)

    @classmethod
    def upgrade(cls, model_settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Sampling settings saved in the model config by older versions move to `sample`."""
        model = dict(model_settings)
        sample = {new: model.pop(old) for old, new in _OLD_SAMPLE_KEYS.items() if old in model}
        return model, sample

    def configure_optimizers(self) -> None:
        """Adam on the U-Net."""
        net = self.networks["net"]
        self.optimizers = {
            "net": torch.optim.Adam(
                net.parameters(), self.cfg.lr, betas=self.cfg.betas, foreach=True
            )
        }

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One Adam step on the simple loss; logs "loss"."""
        net, opt = self.networks["net"], self.optimizers["net"]
        loss = self.loss(batch.images, batch.labels, ctx.rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ctx.sync(net)
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
        opts: DiffusionSampleConfig | None = None,
    ) -> torch.Tensor:
        """Run the reverse process from x_T = x (in noise space); returns x_0 in [-1, 1].

        Per-step noise comes from `generator` (drawn for the whole batch on the CPU, so results
        do not depend on the internal batch size); DDIM with eta = 0 and DPM-Solver++ draw none.
        """
        o = self.sample_options(opts)
        ab = self.alpha_bar.tolist()
        steps, T = o.steps_for(self.cfg.timesteps), self.cfg.timesteps
        solver = o.sampler == "dpm-solver++"
        seq = solver_sequence(steps, T) if solver else timestep_sequence(steps, T)
        x = x.float().to(self.device)
        labels = None if labels is None else labels.to(self.device)
        stochastic = o.sampler == "ddpm" or (o.sampler == "ddim" and o.eta > 0)
        prev: tuple[torch.Tensor, float] | None = None
        with self.inference("net") as net:
            for i, t in enumerate(seq):
                ab_t = ab[t]
                ab_next = ab[seq[i + 1]] if i + 1 < len(seq) else 1.0
                noise = None
                if stochastic and i + 1 < len(seq):
                    noise = torch.randn(x.shape, generator=generator).to(self.device)
                e = self._eps_in_batches(net, x, t, labels, o.guidance)
                if o.sampler == "ddpm":
                    x = ddpm_step(x, e, ab_t, ab_next, noise)
                elif o.sampler == "ddim":
                    x = ddim_step(x, e, ab_t, ab_next, o.eta, noise)
                else:
                    x0, _ = predict_x0(x, e, ab_t)
                    x, prev = dpm_solver_step(x, x0, ab_t, ab_next, prev), (x0, ab_t)
        return x.cpu()

    def _eps_in_batches(
        self,
        net: nn.Module,
        x: torch.Tensor,
        t: int,
        labels: torch.Tensor | None,
        guidance: float,
    ) -> torch.Tensor:
        """The noise estimate at timestep t for every image, SAMPLE_BATCH images per call."""
        out = []
        for j in range(0, len(x), SAMPLE_BATCH):
            xj = x[j : j + SAMPLE_BATCH]
            tj = torch.full((len(xj),), t, dtype=torch.long, device=self.device)
            yj = None if labels is None else labels[j : j + SAMPLE_BATCH]
            out.append(self.eps(net, xj, tj, yj, guidance))
        return torch.cat(out)

    def draw(
        self, n: int, seed: int, opts: DiffusionSampleConfig, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """n images in [0, 1] from the EMA network: x_T and every step's noise from the seed."""
        gen = torch.Generator().manual_seed(seed)
        x_T = torch.randn((n, *self.image_shape), generator=gen)
        x0 = self.denoise(x_T, gen, labels, opts)
        return ((x0 + 1) / 2).clamp(0, 1)
