"""Structured channel pruning of the GAN generator: a genuinely thinner network.

Every hidden layer of the DCGAN generator (the Linear to the base grid and each transposed
convolution) keeps its most important output channels: those with the largest |scale| of the
BatchNorm that follows (network slimming, Liu et al. 2017: BatchNorm normalises the weights
away, so their L1 norm says little; a class-conditional BatchNorm's scale is averaged over the
classes), or the largest L1 weight norm where there is no BatchNorm.
Its BatchNorm keeps the same channels, and the next layer keeps the matching input channels.
The result is a plain `Generator` of the thinner widths that `student_widths` names, so it
loads where any GAN generator does. A dropped channel whose activation is zero (zero weights,
zero BatchNorm scale and shift) leaves the output unchanged; any other dropped channel changes
it, which is what distillation then repairs.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from pixelsmith.models.gan import ClassBatchNorm, Generator


def hidden_widths(g: Generator) -> list[int]:
    """The output channels of the generator's hidden layers: base grid, then each deconv."""
    return [g.base[0]] + [m.out_channels for m in g.blocks if isinstance(m, nn.ConvTranspose2d)]


def _deconvs(g: Generator) -> list[tuple[nn.ConvTranspose2d, nn.Module]]:
    mods = list(g.blocks)
    return [(mods[i], mods[i + 1]) for i in range(0, len(mods), 3)]


def channel_scores(g: Generator) -> list[Tensor]:
    """Each hidden channel's importance, layer by layer: |BatchNorm scale| after the layer,
    else the L1 norm of the weights producing it."""
    hw = g.base[1] * g.base[2]
    fc = g.fc.weight.detach().view(g.base[0], hw, -1).abs().sum((1, 2))
    # ConvTranspose2d weights are (in, out, kh, kw): output channel c is weight[:, c].
    layers = [(fc, g.fc_norm)] + [
        (d.weight.detach().abs().sum((0, 2, 3)), n) for d, n in _deconvs(g)
    ]
    return [
        _bn_scale(n) if isinstance(n, nn.BatchNorm2d | ClassBatchNorm) else w for w, n in layers
    ]


def _bn_scale(n: nn.Module) -> Tensor:
    """|BatchNorm scale| per channel; a class-conditional one's averaged over the classes."""
    if isinstance(n, ClassBatchNorm):
        return n.scale.weight.detach().abs().mean(0)
    return n.weight.detach().abs()


def _norm(src: nn.Module, dst: nn.Module, keep: Tensor) -> None:
    if isinstance(src, ClassBatchNorm):
        dst.scale.weight.data.copy_(src.scale.weight.data[:, keep])
        dst.shift.weight.data.copy_(src.shift.weight.data[:, keep])
        src, dst = src.bn, dst.bn
    if isinstance(src, nn.BatchNorm2d):
        names = ("weight", "bias") if src.affine else ()
        for name in (*names, "running_mean", "running_var"):
            getattr(dst, name).data.copy_(getattr(src, name).data[keep])
        dst.num_batches_tracked.data.copy_(src.num_batches_tracked.data)


@torch.no_grad()
def prune_into(src: Generator, dst: Generator) -> list[Tensor]:
    """Copy `src`'s most important channels (channel_scores) into the thinner `dst` (same
    depth); returns the kept channel indices of each hidden layer."""
    want = hidden_widths(dst)
    have = hidden_widths(src)
    if len(want) != len(have) or any(w > h for w, h in zip(want, have, strict=True)):
        raise ValueError(f"cannot prune widths {have} into {want}")
    keep = [s.topk(w).indices.sort().values for s, w in zip(channel_scores(src), want, strict=True)]
    hw = src.base[1] * src.base[2]
    rows = (keep[0][:, None] * hw + torch.arange(hw)).reshape(-1)
    dst.fc.weight.copy_(src.fc.weight[rows])
    dst.fc.bias.copy_(src.fc.bias[rows])
    if src.embed is not None:
        dst.embed.weight.copy_(src.embed.weight)
    if src.cuts is not None:  # a self-conditioned G's clusters: z[:, 0] must pick the same ones
        dst.cuts.copy_(src.cuts)
        dst.prior.copy_(src.prior)
    _norm(src.fc_norm, dst.fc_norm, keep[0])
    pairs = zip(_deconvs(src), _deconvs(dst), strict=True)
    for i, ((sd, sn), (dd, dn)) in enumerate(pairs):
        dd.weight.copy_(sd.weight[keep[i]][:, keep[i + 1]])
        _norm(sn, dn, keep[i + 1])
    dst.to_img.weight.copy_(src.to_img.weight[:, keep[-1]])
    dst.to_img.bias.copy_(src.to_img.bias)
    return keep


def prune_generator(src: Generator, dst_template: Generator) -> Generator:
    """A copy of the thinner `dst_template` holding `src`'s pruned weights."""
    dst = copy.deepcopy(dst_template)
    prune_into(src, dst)
    return dst
