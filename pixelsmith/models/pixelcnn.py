"""Gated PixelCNN (van den Oord et al. 2016): an exact-likelihood autoregressive image model.

Each sub-pixel value (0..255) is predicted from every value before it in raster order (rows top to
bottom, pixels left to right, channels R then G then B), with no blind spot:

- a vertical stack sees only rows strictly above (its first convolution masks its bottom kernel
  row; later ones see rows r - k//2 .. r of the vertical features, which are themselves strictly
  above), and feeds the horizontal stack through a 1x1 link of its pre-activation;
- a horizontal stack sees the pixels left of the current one in its row (1 x (k//2 + 1) kernels)
  and, at the current pixel, earlier channels only (mask A in the first layer, B after);
- gated activations tanh(a) * sigmoid(b), residual connections in the horizontal stack, and an
  optional class embedding added to every gate of both stacks (`conditional`);
- per channel either a 256-way softmax (default) or a mixture of discretised logistics
  (`output=logistic`, as in PixelCNN++ but with the channel dependence left to the masks).

Colour images work: feature maps are split into C equal groups, group g may see channels < g of
the current pixel (A) or features of groups <= g (B), so `channels` must be a multiple of C (the
default rounds 32 up to one). Any image size works (no down-sampling); training and sampling
time grow with H x W x C.

The training loss is the exact NLL in bits per dimension (logged as `loss` and `bpd`);
`PixelCNN.nll` reports it for any uint8 images. Sampling goes pixel by pixel, but only what a new
pixel changes is computed: the vertical stack once per row (one output row per layer, from the
k//2 + 1 rows it reads), the horizontal stack and the output head once per pixel and channel (one
column, as matrix products on the k//2 + 1 columns it reads). Measured on one CPU thread at 28x28
grey (2-core machine, noisy to +-30%): the default config takes ~16 ms per image in batches of
64 (~11 ms in batches of 256, ~70 ms in batches of 8, where per-op overhead dominates); the
`pixelcnn-30min` preset ~25 ms (64) and ~17 ms (256). The naive loop that runs the whole network
on the whole image for every pixel (`_sample_naive`, the reference the tests compare against)
takes 5-8 s per image for the default config: ~300x slower at batch 64, ~75x at batch 8.
`bench/pixelcnn_sampling.py` measures both side by side: on one thread of a 2-core AVX-512 Xeon
(2026-12-01) 7.9 ms per image at batch 64 and 29 ms at batch 8, against 2.5 s for the naive loop
at batch 8 (87x).

Reads top to bottom: config, masks and networks, likelihoods, samplers, the family.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models.base import (
    Abilities,
    Batch,
    Family,
    LabelledSampleConfig,
    Preset,
    StepContext,
)
from pixelsmith.nn.likelihood import bits_per_dim, bound_log_scale, discretized_logistic_logp

OUTPUTS = ("softmax", "logistic")
LEVELS = 256
SAMPLE_BATCH = 256
DEFAULT_WIDTH = 32


@dataclass
class PixelCNNConfig:
    """Settings of the PixelCNN family."""

    # Feature maps of each stack, a multiple of the image channels (one group per colour);
    # unset: 32 rounded up to such a multiple (32 grey and RGBA, 33 RGB).
    channels: int | None = None
    layers: int = 5
    # Odd kernel width: the vertical stack uses (k//2 + 1) x k, the horizontal 1 x (k//2 + 1).
    kernel: int = 5
    output: str = "softmax"
    # Logistic components per sub-pixel (output=logistic).
    mixtures: int = 5
    conditional: bool = False
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.999)
    # Largest gradient norm before an Adam step (0 = no clipping).
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UserError on impossible settings."""
        for key in ("layers", "mixtures"):
            v = getattr(self, key)
            require(v > 0, f"model.{key} must be positive, got {v}")
        require(
            self.channels is None or self.channels > 0,
            f"model.channels must be positive or unset, got {self.channels}",
        )
        require(
            self.kernel >= 3 and self.kernel % 2 == 1,
            f"model.kernel must be odd and at least 3, got {self.kernel}",
        )
        require(
            self.output in OUTPUTS,
            f"model.output must be one of {', '.join(OUTPUTS)}, got {self.output!r}",
        )
        require(self.lr > 0, f"model.lr must be positive, got {self.lr}")
        require(self.grad_clip >= 0, f"model.grad_clip must be >= 0, got {self.grad_clip}")

    def width(self, colours: int) -> int:
        """Feature maps per stack for images with `colours` channels."""
        return -(-DEFAULT_WIDTH // colours) * colours if self.channels is None else self.channels

    def params_per_channel(self) -> int:
        """Output numbers per sub-pixel: 256 logits, or (weight, mean, log-scale) per component."""
        return LEVELS if self.output == "softmax" else 3 * self.mixtures


# ---- masks and networks ---------------------------------------------------------------------


def channel_groups(n: int, c: int) -> Tensor:
    """Which of c colour groups each of n channels belongs to (n a multiple of c)."""
    return torch.arange(n) * c // n


def centre_mask(
    kernel: tuple[int, int], out_groups: Tensor, in_groups: Tensor, strict: bool
) -> Tensor:
    """Ones, except at the kernel's bottom-right (current pixel) tap: there output group g sees
    input groups < g (strict, mask A) or <= g (mask B)."""
    mask = torch.ones(len(out_groups), len(in_groups), *kernel)
    sees = in_groups[None, :] < out_groups[:, None] if strict else in_groups <= out_groups[:, None]
    mask[:, :, -1, -1] = sees.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """An unpadded convolution whose weight is multiplied by a fixed 0/1 mask."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], mask: Tensor | None = None):
        super().__init__(cin, cout, kernel)
        self.register_buffer("mask", mask, persistent=False)

    def masked_weight(self) -> Tensor:
        """The weight with masked taps zeroed."""
        return self.weight if self.mask is None else self.weight * self.mask

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias)


def gate(pre: Tensor, dim: int = 1) -> Tensor:
    """tanh(first half) * sigmoid(second half) along `dim`."""
    a, b = pre.chunk(2, dim)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One layer of both stacks; `first` takes the image and uses the strict (A) masks."""

    def __init__(self, cin: int, hidden: int, kernel: int, colours: int, first: bool):
        super().__init__()
        kv, g = kernel // 2, channel_groups(hidden, colours)
        gates = g.repeat(2)  # the tanh half and the sigmoid half have the same groups
        cin_groups = torch.arange(colours) if first else g
        vmask = None
        if first:  # the current row is not known yet: drop the kernel's bottom row
            vmask = torch.ones(2 * hidden, cin, kv + 1, kernel)
            vmask[:, :, -1] = 0
        self.first, self.kv = first, kv
        self.v = MaskedConv2d(cin, 2 * hidden, (kv + 1, kernel), vmask)
        self.link = nn.Conv2d(2 * hidden, 2 * hidden, 1)
        self.h = MaskedConv2d(
            cin, 2 * hidden, (1, kv + 1), centre_mask((1, kv + 1), gates, cin_groups, first)
        )
        self.out = MaskedConv2d(hidden, hidden, (1, 1), centre_mask((1, 1), g, g, False))

    def vertical(self, v_padded: Tensor, cond: Tensor | None) -> Tensor:
        """Vertical pre-activation from input padded by k//2 on the top, left and right."""
        pre = self.v(v_padded)
        return pre if cond is None else pre + cond

    def horizontal(self, h_pre: Tensor, link: Tensor, cond: Tensor | None) -> Tensor:
        """The gated, 1x1-mixed horizontal update from its conv output and the vertical link."""
        pre = h_pre + link
        if cond is not None:
            pre = pre + cond
        return self.out(gate(pre))

    def forward(
        self, v: Tensor, h: Tensor, cond: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        kv = self.kv
        cv, ch = cond if cond is not None else (None, None)
        v_pre = self.vertical(F.pad(v, (kv, kv, kv, 0)), cv)
        update = self.horizontal(self.h(F.pad(h, (kv, 0, 0, 0))), self.link(v_pre), ch)
        return gate(v_pre), update if self.first else h + update


class GatedPixelCNN(nn.Module):
    """Image scaled to [-1, 1] (and labels) -> (N, C, P, H, W) distribution parameters."""

    def __init__(self, cfg: PixelCNNConfig, shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        c = shape[0]
        h = cfg.width(c)
        self.colours, self.hidden = c, h
        self.params = cfg.params_per_channel()
        self.layers = nn.ModuleList(
            GatedLayer(c if i == 0 else h, h, cfg.kernel, c, i == 0) for i in range(cfg.layers)
        )
        g = channel_groups(h, c)
        self.head1 = MaskedConv2d(h, h, (1, 1), centre_mask((1, 1), g, g, False))
        out_groups = channel_groups(c * self.params, c)
        self.head2 = MaskedConv2d(
            h, c * self.params, (1, 1), centre_mask((1, 1), out_groups, g, False)
        )
        # One embedding per layer and stack, added to the gate pre-activations.
        self.embed = nn.Embedding(num_classes, cfg.layers * 4 * h) if num_classes else None
        if cfg.output == "logistic":  # start with components spread over the range, not one blob
            k = cfg.mixtures
            with torch.no_grad():
                bias = self.head2.bias.view(c, 3, k)
                bias[:, 1] = torch.linspace(-1 + 1 / k, 1 - 1 / k, k)
                bias[:, 2] = math.log(2 / k) - 1

    def conds(self, labels: Tensor | None) -> list[tuple[Tensor, Tensor]] | None:
        """Per layer, the class terms (vertical, horizontal), each (N, 2h, 1, 1)."""
        if self.embed is None:
            return None
        e = self.embed(labels).view(len(labels), len(self.layers), 2, 2 * self.hidden, 1, 1)
        return [(e[:, i, 0], e[:, i, 1]) for i in range(len(self.layers))]

    def head(self, h: Tensor) -> Tensor:
        """Distribution parameters from the last horizontal features."""
        return self.head2(F.relu(self.head1(F.relu(h))))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        conds = self.conds(labels)
        v = h = x
        for i, layer in enumerate(self.layers):
            v, h = layer(v, h, None if conds is None else conds[i])
        out = self.head(h)
        return out.view(out.shape[0], self.colours, self.params, *out.shape[2:])


# ---- likelihoods --------------------------------------------------------------------------


def to_input(levels: Tensor) -> Tensor:
    """Integer levels 0..255 (any dtype) -> network input in [-1, 1]."""
    return levels / 127.5 - 1


def logistic_bin_logp(level: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log P(level) for a logistic on [-1, 1] discretised into 256 bins, tails in the end bins."""
    return discretized_logistic_logp(level, mean, bound_log_scale(log_scale))


def mixture_logp(params: Tensor, level: Tensor, dim: int) -> Tensor:
    """log P(level) under the mixture whose (weights, means, log-scales) lie along `dim`."""
    logits, mean, log_scale = params.chunk(3, dim)
    comp = logistic_bin_logp(level.unsqueeze(dim), mean, log_scale)
    return torch.logsumexp(F.log_softmax(logits, dim) + comp, dim)


def log_prob(params: Tensor, levels: Tensor, output: str) -> Tensor:
    """log P of integer levels (N, C, H, W) given parameters (N, C, P, H, W)."""
    if output == "softmax":
        return F.log_softmax(params, 2).gather(2, levels.long().unsqueeze(2)).squeeze(2)
    return mixture_logp(params, levels.to(params.dtype), 2)


def level_log_probs(params: Tensor, output: str) -> Tensor:
    """log P of every level 0..255 given one sub-pixel's parameters (N, P) -> (N, 256)."""
    if output == "softmax":
        return F.log_softmax(params, 1)
    levels = torch.arange(LEVELS, dtype=params.dtype, device=params.device)
    return mixture_logp(params[:, None, :], levels[None, :], 2)


def draw_level(logp: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF draw of a level per row of logp (N, 256) from uniforms u (N,)."""
    cdf = logp.exp().cumsum(1)
    return (cdf < u[:, None] * cdf[:, -1:]).sum(1).clamp(max=LEVELS - 1)


# ---- samplers -----------------------------------------------------------------------------


def _sample_naive(net: GatedPixelCNN, output: str, u: Tensor, labels: Tensor | None) -> Tensor:
    """Reference sampler: the whole network on the whole image for every sub-pixel."""
    n, c, hh, ww = u.shape
    levels = torch.zeros(n, c, hh, ww, dtype=u.dtype, device=u.device)
    for r in range(hh):
        for col in range(ww):
            for ch in range(c):
                params = net(to_input(levels), labels)[:, ch, :, r, col]
                levels[:, ch, r, col] = draw_level(
                    level_log_probs(params, output), u[:, ch, r, col]
                )
    return levels


def _sample_fast(net: GatedPixelCNN, output: str, u: Tensor, labels: Tensor | None) -> Tensor:
    """The same draws as `_sample_naive`, computing only what each new sub-pixel changes.

    Per row, every layer's vertical convolution runs on its k//2 + 1 newest rows of the layer
    below (one output row) and the vertical link is kept for the row. Per pixel and channel, every
    horizontal layer runs as a matrix product on its k//2 + 1 newest columns (one output column),
    and the head on that column. Buffers are zero-padded like the full forward pass.
    """
    n, c, hh, ww = u.shape
    layers, kv = net.layers, net.layers[0].kv
    hidden, kw = net.hidden, kv + 1
    conds = net.conds(labels)
    new = u.new_zeros
    # Vertical inputs per layer, padded by kv on top, left and right (row r + kv = image row r).
    vin = [new(n, c if i == 0 else hidden, hh + kv, ww + 2 * kv) for i in range(len(layers))]
    # Horizontal inputs per layer for the current row, (n, kv + W, channels), left-padded.
    hin = [new(n, kv + ww, c if i == 0 else hidden) for i in range(len(layers) + 1)]
    # Weights as right-hand matrices of x @ w; the head's last one split per colour.
    w_h = [ly.h.masked_weight()[:, :, 0].transpose(1, 2).reshape(2 * hidden, -1) for ly in layers]
    w_h = [w.t().contiguous() for w in w_h]
    w_out = [ly.out.masked_weight()[:, :, 0, 0].t().contiguous() for ly in layers]
    w1 = net.head1.masked_weight()[:, :, 0, 0].t().contiguous()
    w2 = net.head2.masked_weight()[:, :, 0, 0].t().chunk(c, 1)
    w2 = [w.contiguous() for w in w2]
    b2 = net.head2.bias.chunk(c)
    cond_h = [ch[:, :, 0, 0] for _, ch in conds] if conds else [0.0] * len(layers)
    levels = new(n, c, hh, ww)
    for r in range(hh):
        rows = []  # per layer: vertical link + horizontal bias + class term, (n, W, 2h)
        for i, ly in enumerate(layers):
            v_pre = ly.vertical(vin[i][:, :, r : r + kw], None if conds is None else conds[i][0])
            row = ly.link(v_pre)[:, :, 0] + (ly.h.bias + cond_h[i])[..., None]
            rows.append(row.transpose(1, 2).contiguous())
            if i + 1 < len(layers):
                vin[i + 1][:, :, r + kv, kv : kv + ww] = gate(v_pre)[:, :, 0]
        for col in range(ww):
            for ch in range(c):
                for i, ly in enumerate(layers):
                    pre = torch.addmm(
                        rows[i][:, col], hin[i][:, col : col + kw].reshape(n, -1), w_h[i]
                    )
                    update = torch.addmm(ly.out.bias, gate(pre), w_out[i])
                    hin[i + 1][:, col + kv] = update if i == 0 else hin[i][:, col + kv] + update
                feats = F.relu(torch.addmm(net.head1.bias, F.relu(hin[-1][:, col + kv]), w1))
                params = torch.addmm(b2[ch], feats, w2[ch])
                level = draw_level(level_log_probs(params, output), u[:, ch, r, col]).to(u.dtype)
                levels[:, ch, r, col] = level
                hin[0][:, col + kv, ch] = vin[0][:, ch, r + kv, kv + col] = to_input(level)
    return levels


# ---- the family ---------------------------------------------------------------------------


@dataclass
class PixelCNNSampleConfig(LabelledSampleConfig):
    """Sampling options of the PixelCNN family: the class of each image when conditional."""


PRESETS: dict[str, Preset] = {
    "pixelcnn": Preset("the default: 5 gated layers", 10.0, {"train": {"batch": 16}}),
    # What 30 minutes make: docs/results.md (bench/family_results.py).
    "pixelcnn-30min": Preset(
        "8 gated layers (a larger receptive field), for 30 minutes on a CPU",
        30.0,
        {"model": {"layers": 8, "kernel": 5}, "train": {"batch": 16}},
    ),
}


class PixelCNN(Family):
    """Gated PixelCNN with a 256-way softmax or logistic-mixture output, optionally conditional."""

    name = "pixelcnn"
    Config = PixelCNNConfig
    SampleConfig = PixelCNNSampleConfig
    abilities = Abilities(likelihood=True)
    presets = PRESETS
    not_exported = (
        "its sampler runs the network once per sub-pixel (export covers one-shot generators)"
    )
    ema_pairs = {"net": "net_ema"}
    # Sampling is sequential over every sub-pixel: 64x64 RGB is 12,288 network steps per image.
    max_size = 64

    def __init__(
        self, cfg: PixelCNNConfig, image_shape: tuple[int, int, int], num_classes: int = 0
    ):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        c = self.image_shape[0]
        if cfg.channels is not None and cfg.channels % c:
            up = -(-cfg.channels // c) * c
            raise UserError(
                f"model.channels={cfg.channels} must be a multiple of the image's {c} channels "
                f"(one feature group per colour); use --set model.channels={up}, or leave it "
                "unset"
            )
        self.classes = self.require_classes(cfg.conditional, "PixelCNN")
        self.networks = {"net": GatedPixelCNN(cfg, self.image_shape, self.classes)}

    def configure_optimizers(self) -> None:
        """Adam on the network."""
        net = self.networks["net"]
        self.optimizers = {
            "net": torch.optim.Adam(
                net.parameters(), self.cfg.lr, betas=self.cfg.betas, foreach=True
            )
        }

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One Adam step on the NLL in bits per dimension (no randomness involved)."""
        net = self.networks["net"]
        levels = (batch.images * 255).round().clamp(0, 255)
        y = batch.labels if self.classes else None
        logp = log_prob(net(to_input(levels), y), levels, self.cfg.output)
        loss = -logp.mean() / math.log(2)
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ctx.sync(net)
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), self.cfg.grad_clip, foreach=True)
        opt.step()
        value = loss.item()
        return {"loss": value, "bpd": value}

    @torch.no_grad()
    def nll(
        self,
        images_uint8: Tensor,
        batch: int = 256,
        labels: Tensor | None = None,
        ema: bool = True,
    ) -> dict[str, float]:
        """Exact mean NLL per image in nats and bits/dim of uint8 (N, C, H, W) images."""
        x = torch.as_tensor(images_uint8)
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != self.image_shape or x.ndim != 4:
            raise UserError(
                f"nll needs uint8 images of shape (N, {', '.join(map(str, self.image_shape))}), "
                f"got {x.dtype} {tuple(x.shape)}"
            )
        y = None
        if self.classes:
            if labels is None:
                raise UserError("a conditional PixelCNN needs the images' labels to score them")
            y = self.check_labels(labels, len(x))
        total = torch.zeros((), dtype=torch.float64)
        with self.inference("net", average=ema) as net:
            dtype = next(net.parameters()).dtype
            for i in range(0, len(x), batch):
                levels = x[i : i + batch].to(self.device, dtype)
                yi = None if y is None else y[i : i + batch].to(self.device)
                logp = log_prob(net(to_input(levels), yi), levels, self.cfg.output)
                total -= logp.double().sum().cpu()
        nats = (total / max(len(x), 1)).item()
        dims = math.prod(self.image_shape)
        return {"nats": nats, "bits_per_dim": bits_per_dim(nats, dims), "n": len(x)}

    def nll_scores(
        self, images: Tensor, labels: Tensor | None = None, seed: int = 0
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """The exact negative log-likelihood of real uint8 images, in bits/dim and nats."""
        r = self.nll(images, labels=labels if self.classes else None)
        return {"bits_per_dim": r["bits_per_dim"], "nats": r["nats"]}, {
            "exact": True,
            "output": self.cfg.output,
        }

    def draw(self, n: int, seed: int, opts: PixelCNNSampleConfig, labels: Tensor | None) -> Tensor:
        """n images in [0, 1] drawn pixel by pixel, from uniforms drawn from the seed."""
        return self._sample(n, seed, labels, _sample_fast)

    @torch.no_grad()
    def _sample(self, n: int, seed: int, labels: Tensor | None, draw: Callable) -> Tensor:
        """Uniforms for every sub-pixel from `seed`, turned into images by a sampler."""
        u = torch.rand(n, *self.image_shape, generator=torch.Generator().manual_seed(int(seed)))
        out = []
        with self.inference("net") as net:
            dtype = next(net.parameters()).dtype
            for i in range(0, n, SAMPLE_BATCH):
                ui = u[i : i + SAMPLE_BATCH].to(self.device, dtype)
                yi = None if labels is None else labels[i : i + SAMPLE_BATCH].to(self.device)
                out.append((draw(net, self.cfg.output, ui, yi) / 255).float().cpu())
        return torch.cat(out) if out else torch.empty(0, *self.image_shape)
