"""The denoising U-Net of the diffusion family: eps_theta(x_t, t, class).

Reads top to bottom: the size rule, the sinusoidal timestep embedding, the blocks (residual
block with GroupNorm + SiLU and the time embedding added inside, self-attention, down- and
up-sampling) and the U-Net that joins them with skip connections.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pixelsmith.errors import UserError


def check_size(height: int, width: int, levels: int) -> None:
    """Raise UserError unless `levels - 1` halvings of height x width are exact and >= 2 pixels."""
    k = 2 ** (levels - 1)
    if height % k or width % k or min(height, width) // k < 2:
        raise UserError(
            f"image size {height}x{width} is not supported by the diffusion U-Net with {levels} "
            f"resolutions: height and width must be multiples of {k} and at least {2 * k} "
            f"(e.g. {', '.join(str(k * m) for m in (4, 7, 8, 16) if k * m >= 2 * k)}); resize "
            "with --set data.size=32, or use fewer resolutions with --set model.channel_mult=1,2"
        )


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(n,) -> (n, dim): [sin(t f_i), cos(t f_i)] with f_i = max_period^(-i / half), i < half."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(c, 8), c)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, + projected time embedding, GroupNorm-SiLU-conv, residual add."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over all pixels, residual, output projection zero-initialised."""

    def __init__(self, c: int, heads: int = 4):
        super().__init__()
        self.heads = heads if c % heads == 0 else 1
        self.norm = _norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (n, heads, hw, c/heads)
        a = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(a.transpose(-1, -2).reshape(n, c, h, w))


class Down(nn.Module):
    """Halve the resolution with a strided 3x3 convolution."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Up(nn.Module):
    """Double the resolution: nearest-neighbour upsampling, then a 3x3 convolution."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """eps_theta(x_t, t, y): a U-Net over len(mult) resolutions, `blocks` ResBlocks per level.

    Every down-path block output is kept as a skip and concatenated onto the matching up-path
    block's input. Self-attention (when asked) sits after each block at the lowest resolution
    and in the middle. With `num_classes`, the class embedding (row `num_classes` is the learnt
    null class for classifier-free guidance) is added to the time embedding.
    """

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        channels: int,
        mult: tuple[int, ...],
        blocks: int = 1,
        attention: bool = True,
        num_classes: int = 0,
    ):
        super().__init__()
        check_size(*size, len(mult))
        self.channels = channels
        emb_dim = 4 * channels
        self.time_mlp = nn.Sequential(
            nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.conv_in = nn.Conv2d(in_channels, channels, 3, 1, 1)
        widths = [channels * m for m in mult]
        last = len(mult) - 1

        def attn(level: int, c: int) -> nn.Module:
            return Attention(c) if attention and level == last else nn.Identity()

        self.down = nn.ModuleList()
        skips, c = [], channels
        for level, width in enumerate(widths):
            for _ in range(blocks):
                self.down.append(nn.ModuleList([ResBlock(c, width, emb_dim), attn(level, width)]))
                c = width
                skips.append(c)
            if level < last:
                self.down.append(Down(c))
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim), attn(last, c), ResBlock(c, c, emb_dim)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for _ in range(blocks):
                self.up.append(
                    nn.ModuleList(
                        [
                            ResBlock(c + skips.pop(), widths[level], emb_dim),
                            attn(level, widths[level]),
                        ]
                    )
                )
                c = widths[level]
            if level > 0:
                self.up.append(Up(c))
        self.norm_out = _norm(c)
        self.conv_out = nn.Conv2d(c, in_channels, 3, 1, 1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.channels))
        if self.class_emb is not None:
            if y is None:  # no labels: the null class
                y = torch.full((x.shape[0],), self.class_emb.num_embeddings - 1, device=x.device)
            emb = emb + self.class_emb(y)
        h = self.conv_in(x)
        skips = []
        for layer in self.down:
            if isinstance(layer, Down):
                h = layer(h)
            else:
                h = layer[1](layer[0](h, emb))
                skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, Up):
                h = layer(h)
            else:
                h = layer[1](layer[0](torch.cat([h, skips.pop()], dim=1), emb))
        return self.conv_out(F.silu(self.norm_out(h)))
