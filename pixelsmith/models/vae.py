"""VAEs: a convolutional variational autoencoder with a discretised-logistic, Bernoulli or
Gaussian decoder, a beta-VAE weight on the KL term, and test-set ELBO / IWAE likelihood bounds.

Reads top to bottom: config, shape rule, networks, likelihoods and KL, the family (train step,
sampler, reconstruction, interpolation, likelihood bounds).

Likelihoods (`model.likelihood`), each per sub-pixel and independent given z:

- ``logistic`` (default): a discretised logistic over the 256 levels (as in the IAF and
  PixelCNN++ papers, one component, no mixture): levels u map to x = 2u/255 - 1, bin edges are
  x +- 1/255 and the two end bins extend to -inf / +inf, so the 256 probabilities sum to 1. Its
  negative log-likelihood is a true code length for 8-bit images: bits/dim are comparable with
  other models' published bits/dim.
- ``bernoulli``: the classic VAE use on grey levels: log p = x log p + (1 - x) log(1 - p) with the
  intensity x = u/255 as a soft target. Images are not binarised and the continuous-Bernoulli
  normaliser is not added, so this is a proper log-probability only for binary (0/255) images;
  otherwise it is a cross-entropy, not a likelihood.
- ``gaussian``: a normal density on x = u/255 in [0, 1], with a per-pixel scale predicted by the
  decoder (`gaussian_sigma` null) or a fixed one. A density on continuous values: its nats can
  be negative and are not comparable with discrete bits/dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models.base import Abilities, Batch, Family, LatentSpec, Preset, StepContext
from pixelsmith.nn.likelihood import bits_per_dim, bound_log_scale, discretized_logistic_logp

LIKELIHOODS = ("logistic", "bernoulli", "gaussian")

# Importance samples per image for the IWAE bound that `pixelsmith eval --metrics nll` reports.
IWAE_K = 100

PRESETS: dict[str, Preset] = {
    # ~260 MFLOP per training image at 28x28: batch 32 runs a few hundred steps a minute.
    "vae": Preset("the default convolutional VAE", 10.0, {"train": {"batch": 32}}),
    # Per step, a narrower net with residual blocks bought nothing early on, and blocks=1 at this
    # width costs 3x per step, so the time goes to more steps of the default net, in batches of
    # 64. What 30 minutes make: docs/results.md (bench/family_results.py).
    "vae-30min": Preset(
        "the default net in larger batches, for 30 minutes on a CPU", 30.0, {"train": {"batch": 64}}
    ),
}


@dataclass
class VAEConfig:
    """Settings of the VAE family."""

    z_dim: int = 32
    channels: int = 32
    max_channels: int = 128
    # Residual 3x3 blocks per resolution in the encoder and the decoder (0 = plain strided convs);
    # each one roughly triples the cost of a step at the default width.
    blocks: int = 0
    likelihood: str = "logistic"
    # Gaussian only: fixed standard deviation on [0, 1] intensities, or null = learned per pixel.
    gaussian_sigma: float | None = None
    # Weight of the KL term in the training objective (beta-VAE); the logged "loss" stays -ELBO.
    beta: float = 1.0
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UserError on impossible settings."""
        for key in ("z_dim", "channels", "max_channels", "lr"):
            v = getattr(self, key)
            require(v > 0, f"model.{key} must be positive, got {v}")
        require(self.blocks >= 0, f"model.blocks must be >= 0, got {self.blocks}")
        require(
            self.likelihood in LIKELIHOODS,
            f"model.likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}",
        )
        require(
            self.gaussian_sigma is None or self.gaussian_sigma > 0,
            f"model.gaussian_sigma must be positive or null (learned), got {self.gaussian_sigma}",
        )
        require(self.beta >= 0, f"model.beta must be >= 0, got {self.beta}")
        require(
            all(0 <= b < 1 for b in self.betas), f"model.betas must lie in [0, 1), got {self.betas}"
        )


def downsampling_depth(height: int, width: int) -> int:
    """How many 2x stages lead from height x width down to a small grid (>= 3 pixels)."""
    k = 0
    while height % (2 ** (k + 1)) == 0 and width % (2 ** (k + 1)) == 0:
        if min(height, width) // 2 ** (k + 1) < 3:
            break
        k += 1
    if k < 1:
        raise UserError(
            f"image size {height}x{width} is not supported by the VAE: height and width must be "
            "even and at least 6 (e.g. 16, 28, 32, 64); resize with --set data.size=32"
        )
    return k


# ---- networks ------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """x + conv(act(conv(act(x)))), 3x3, width-preserving."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


def _widths(base: int, k: int, cap: int) -> list[int]:
    return [min(cap, base * 2**i) for i in range(k + 1)]


def params_per_subpixel(cfg: VAEConfig) -> int:
    """How many numbers the decoder predicts per sub-pixel: a location and maybe a log-scale."""
    if cfg.likelihood == "logistic" or (
        cfg.likelihood == "gaussian" and cfg.gaussian_sigma is None
    ):
        return 2
    return 1


class VAENet(nn.Module):
    """Encoder image -> (mu, logvar) of q(z|x); decoder z -> likelihood parameters per sub-pixel.

    Without normalisation layers, so train and eval modes compute the same function. Activations
    are NHWC (channels_last) whatever the weights' layout: oneDNN's fast convolutions need it.
    """

    def __init__(self, cfg: VAEConfig, shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = shape
        k = downsampling_depth(h, w)
        ch = _widths(cfg.channels, k, cfg.max_channels)
        self.shape, self.params = (c, h, w), params_per_subpixel(cfg)
        self.base = (ch[k], h >> k, w >> k)
        feat = ch[k] * (h >> k) * (w >> k)

        enc: list[nn.Module] = [nn.Conv2d(c, ch[0], 3, 1, 1)]
        for i in range(k):
            enc += [ResBlock(ch[i]) for _ in range(cfg.blocks)]
            enc += [nn.SiLU(), nn.Conv2d(ch[i], ch[i + 1], 4, 2, 1)]
        enc += [ResBlock(ch[k]) for _ in range(cfg.blocks)]
        self.encoder = nn.Sequential(*enc, nn.SiLU(), nn.Flatten())
        self.to_q = nn.Linear(feat, 2 * cfg.z_dim)

        self.from_z = nn.Linear(cfg.z_dim, feat)
        dec: list[nn.Module] = [ResBlock(ch[k]) for _ in range(cfg.blocks)]
        for i in range(k, 0, -1):
            # Nearest upsampling + 3x3 conv: no checkerboard, and several times faster than a
            # transposed conv on CPU (oneDNN) despite 2.25x the multiply-adds.
            dec += [nn.SiLU(), nn.Upsample(scale_factor=2.0), nn.Conv2d(ch[i], ch[i - 1], 3, 1, 1)]
            dec += [ResBlock(ch[i - 1]) for _ in range(cfg.blocks)]
        self.decoder = nn.Sequential(*dec, nn.SiLU(), nn.Conv2d(ch[0], c * self.params, 3, 1, 1))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance for images in [0, 1]."""
        x = (x * 2 - 1).contiguous(memory_format=torch.channels_last)
        mu, logvar = self.to_q(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Likelihood parameters, shaped (N, params, C, H, W)."""
        h = self.from_z(z).view(-1, *self.base).contiguous(memory_format=torch.channels_last)
        out = self.decoder(h)
        return out.reshape(-1, self.params, *self.shape)


# ---- likelihoods and KL: each returns per-element values, summed by the caller -------------


def kl_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL( N(mu, exp(logvar)) || N(0, 1) ) per dimension, in nats."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)


def log_normal(z: Tensor, mu: Tensor | float = 0.0, logvar: Tensor | float = 0.0) -> Tensor:
    """log N(z; mu, exp(logvar)) per dimension."""
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).square() * torch.exp(-logvar))


def bernoulli_logp(x: Tensor, logits: Tensor) -> Tensor:
    """x log p + (1 - x) log(1 - p) with p = sigmoid(logits), for intensities x in [0, 1]."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def gaussian_logp(x: Tensor, mean: Tensor, log_sigma: Tensor | float) -> Tensor:
    """log N(x; mean, sigma^2), a density on continuous x."""
    return log_normal(x, mean, 2 * torch.as_tensor(log_sigma))


# ---- the family ----------------------------------------------------------------------------


class VAE(Family):
    """Convolutional (beta-)VAE with a discretised-logistic, Bernoulli or Gaussian decoder.

    `sample`, `reconstruct`, `interpolate` and `nll` use the EMA copy of the model.
    """

    name = "vae"
    Config = VAEConfig
    abilities = Abilities(likelihood=True, encodes=True, latent=True)
    presets = PRESETS
    ema_pairs = {"vae": "vae_ema"}
    private_networks = ("vae",)
    generator_net = "vae"
    latent_spaces = ("z",)

    def __init__(self, cfg: VAEConfig, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        self.networks = {"vae": VAENet(cfg, self.image_shape).to(memory_format=torch.channels_last)}

    def configure_optimizers(self) -> None:
        """Adam over the whole model."""
        net = self.networks["vae"]
        # foreach, not fused: fused CPU Adam is not bit-exact across a checkpoint reload.
        opt = torch.optim.Adam(net.parameters(), self.cfg.lr, betas=self.cfg.betas, foreach=True)
        self.optimizers = {"vae": opt}

    # ---- likelihood plumbing ----------------------------------------------------------------

    def log_likelihood(self, params: Tensor, levels: Tensor) -> Tensor:
        """log p(x|z) per image (summed over sub-pixels) for integer levels in 0..255.

        `params` is (N, P, C, H, W) from the decoder; `levels` broadcasts against (N, C, H, W).
        """
        c = self.cfg
        if c.likelihood == "logistic":
            log_scale = bound_log_scale(params[:, 1])
            lp = discretized_logistic_logp(levels, params[:, 0], log_scale)
        elif c.likelihood == "bernoulli":
            lp = bernoulli_logp(levels.to(params.dtype) / 255, params[:, 0])
        else:
            if c.gaussian_sigma is None:
                log_sigma = bound_log_scale(params[:, 1])
            else:
                log_sigma = math.log(c.gaussian_sigma)
            lp = gaussian_logp(levels.to(params.dtype) / 255, params[:, 0], log_sigma)
        return lp.flatten(1).sum(1)

    def to_image(self, params: Tensor) -> Tensor:
        """The picture a decoder output stands for, in [0, 1] (see `sample`)."""
        loc = params[:, 0]
        if self.cfg.likelihood == "logistic":
            return ((loc + 1) / 2).clamp(0, 1)
        if self.cfg.likelihood == "bernoulli":
            return torch.sigmoid(loc)
        return loc.clamp(0, 1)

    # ---- training ---------------------------------------------------------------------------

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One Adam step on rec + beta * KL; logs -ELBO ("loss"), "rec" and "kl" per image."""
        net = self.networks["vae"]
        levels = (batch.images * 255).round().clamp(0, 255)
        mu, logvar = net.encode(levels / 255)
        eps = ctx.rng.randn(levels.shape[0], self.cfg.z_dim)
        z = mu + torch.exp(0.5 * logvar) * eps
        rec = -self.log_likelihood(net.decode(z), levels).mean()
        kl = kl_normal(mu, logvar).sum(1).mean()
        self.optimizers["vae"].zero_grad(set_to_none=True)
        (rec + self.cfg.beta * kl).backward()
        ctx.sync(net)
        self.optimizers["vae"].step()
        rec_v, kl_v = rec.item(), kl.item()
        return {"loss": rec_v + kl_v, "rec": rec_v, "kl": kl_v}

    # ---- sampling and editing ---------------------------------------------------------------

    def _decode_images(self, z: Tensor) -> Tensor:
        with self.inference("vae") as net:
            out = [
                self.to_image(net.decode(z[i : i + 256].to(self.device))).float().cpu()
                for i in range(0, z.shape[0], 256)
            ]
        return torch.cat(out) if out else torch.empty(0, *self.image_shape)

    def _as_unit(self, images: Tensor) -> Tensor:
        """uint8 images or floats in [0, 1], (N, C, H, W) or (C, H, W) -> float (N, C, H, W)."""
        images = torch.as_tensor(images)
        if images.dim() == 3:
            images = images[None]
        if tuple(images.shape[1:]) != self.image_shape:
            raise UserError(
                f"images must be (N, {', '.join(map(str, self.image_shape))}) like the training "
                f"data, got {tuple(images.shape)}"
            )
        if images.dtype == torch.uint8:
            return images.float() / 255
        return images.float().clamp(0, 1)

    def _posterior_mean(self, images: Tensor) -> Tensor:
        x = self._as_unit(images)
        with self.inference("vae") as net:
            parts = [net.encode(x[i : i + 256].to(self.device))[0] for i in range(0, len(x), 256)]
        return torch.cat(parts) if parts else torch.empty(0, self.cfg.z_dim, device=self.device)

    def draw(self, n: int, seed: int, opts: Any, labels: Tensor | None) -> Tensor:
        """n images in [0, 1] decoded from z ~ N(0, I) drawn from the seed.

        Each image is the decoder's location parameter, not a draw of pixel noise: for the
        discretised logistic the logistic's location (its mean, median and mode before
        discretisation) mapped from [-1, 1] to [0, 1] and clamped, i.e. the median of the
        discrete distribution up to rounding to a level; for Bernoulli the mean sigmoid(logit);
        for Gaussian the mean, clamped to [0, 1].
        """
        return self._decode_images(self.latent_prior(n, seed))

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Images (uint8, or float in [0, 1]) decoded from their posterior means, as `sample`."""
        return self._decode_images(self._posterior_mean(images))

    @torch.no_grad()
    def interpolate(self, a: Tensor, b: Tensor, steps: int = 8) -> Tensor:
        """`steps` images decoded along the straight line between a's and b's posterior means."""
        if steps < 2:
            raise UserError(f"interpolation needs at least 2 steps, got {steps}")
        z = self._posterior_mean(torch.cat([self._as_unit(a), self._as_unit(b)]))
        if z.shape[0] != 2:
            raise UserError("interpolate takes one image for each end")
        t = torch.linspace(0, 1, steps, device=z.device)[:, None]
        return self._decode_images(torch.lerp(z[0:1], z[1:2], t))

    # ---- the latent space: z, decoded as `sample` shows it ----------------------------------

    def latent_spec(self, kind: str) -> LatentSpec:
        """z: (z_dim,) codes, moved along straight lines as `interpolate` does."""
        return LatentSpec("z", (self.cfg.z_dim,), "lerp", directions="z")

    def latent_render(self, codes: Tensor, kind: str, labels: Tensor | None = None) -> Tensor:
        """The decoder's picture of each code (see `sample`), through the inference network."""
        return self.to_image(self.inference_net().decode(codes)).float()

    def latent_encode(self, images: Tensor, kind: str) -> Tensor | None:
        """The posterior means of images (uint8, or float in [0, 1])."""
        return self._posterior_mean(images)

    # ---- likelihood bounds ------------------------------------------------------------------

    @torch.no_grad()
    def log_weights(self, images_uint8: Tensor, eps: Tensor) -> Tensor:
        """log p(x, z_j) - log q(z_j | x) for z_j = mu + sigma * eps[:, j]; (N, k) float64.

        `eps` is (N, k, z_dim) standard normal noise; the decoder sees all N * k pairs at once.
        """
        levels = images_uint8.to(self.device)
        n, k = eps.shape[:2]
        with self.inference("vae") as net:
            mu, logvar = net.encode(levels.float() / 255)
            z = mu[:, None] + torch.exp(0.5 * logvar)[:, None] * eps.to(self.device)
            params = net.decode(z.reshape(n * k, -1))
        log_q = log_normal(z, mu[:, None], logvar[:, None]).sum(2)
        log_prior = log_normal(z).sum(2)
        levels = levels.repeat_interleave(k, dim=0)
        log_px = self.log_likelihood(params, levels).view(n, k)
        return (log_px.double() + log_prior.double() - log_q.double()).cpu()

    @torch.no_grad()
    def nll(
        self, images_uint8: Tensor, k: int = 100, seed: int = 0, batch: int = 512
    ) -> dict[str, float]:
        """Negative ELBO and IWAE bounds on -log p(x), in nats per image and bits per dimension.

        For each image, k posterior samples z_j give log-weights w_j = log p(x, z_j) - log q(z_j|x).
        elbo_nats = -mean_j w_j (an unbiased -ELBO estimate, KL by Monte Carlo) and iwae_nats =
        -log mean_j exp(w_j) (Burda et al. 2016; log-mean-exp in float64), both averaged over
        images, so iwae_nats <= elbo_nats holds exactly and with k = 1 the two are equal.
        bits/dim = nats / (C * H * W * ln 2). Only the discretised-logistic likelihood makes these
        code lengths of 8-bit images (bounds on the true NLL, comparable with published bits/dim);
        with Bernoulli they are cross-entropies of grey levels (true NLL only for binary images),
        with Gaussian densities of x = u/255 on continuous values (scale-dependent, may be
        negative), neither comparable with discrete bits/dim. Uses the EMA model. Noise is drawn
        image by image from one generator seeded by `seed`, so results do not depend on `batch`
        (the most image-sample pairs decoded in one pass). "k" and "n" (images) are integers.
        """
        images = torch.as_tensor(images_uint8)
        if images.dim() == 3:
            images = images[None]
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != self.image_shape:
            raise UserError(
                f"nll needs uint8 images of shape (N, {', '.join(map(str, self.image_shape))}), "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        if k < 1 or batch < 1 or len(images) == 0:
            raise UserError(f"nll needs k >= 1, batch >= 1 and some images (k={k}, batch={batch})")
        gen = torch.Generator().manual_seed(int(seed))
        per_pass = max(1, batch // k)
        elbo, iwae = [], []
        for i in range(0, len(images), per_pass):
            x = images[i : i + per_pass]
            eps = torch.stack([torch.randn(k, self.cfg.z_dim, generator=gen) for _ in x])
            # Split the k samples too when one image alone has more than `batch` of them.
            w = torch.cat(
                [self.log_weights(x, eps[:, j : j + batch]) for j in range(0, k, batch)], dim=1
            )
            elbo.append(w.mean(1))
            iwae.append(torch.logsumexp(w, dim=1) - math.log(k))
        elbo_nats = -torch.cat(elbo).mean().item()
        iwae_nats = -torch.cat(iwae).mean().item()
        dims = math.prod(self.image_shape)
        return {
            "elbo_nats": elbo_nats,
            "elbo_bits_per_dim": bits_per_dim(elbo_nats, dims),
            "iwae_nats": iwae_nats,
            "iwae_bits_per_dim": bits_per_dim(iwae_nats, dims),
            "k": int(k),
            "n": len(images),
        }

    def nll_scores(
        self, images: Tensor, labels: Tensor | None = None, seed: int = 0
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """The -ELBO and IWAE (k=100) bounds on real uint8 images, in bits/dim and nats."""
        r = self.nll(images, k=IWAE_K, seed=seed)
        keys = ("elbo_bits_per_dim", "iwae_bits_per_dim", "elbo_nats", "iwae_nats")
        return {k: r[k] for k in keys}, {"iwae_k": IWAE_K, "likelihood": self.cfg.likelihood}
