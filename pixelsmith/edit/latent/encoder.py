"""An image -> code encoder for a latent space, trained on the generator's own samples.

The encoder gives inversion its start (`pixelsmith.edit.latent.invert`). It is a small conv net
(a 3x3 stem, stride-2 blocks down to about 4x4, average-pooled to 4x4, two linear layers). For z
it predicts z; for W and W+ it predicts an offset from the tracked mean w, one per layer for W+,
as e4e/pSp-style encoders do, in units of the codes' spread. The last layer starts at zero, so an
untrained encoder answers the mean code.

Training draws codes from the generator's prior (`space.random`; for W+ half of each batch is
style-mixed at a random layer, the W+ codes StyleGAN itself trains on), renders them, and
minimises the code error (mean squared, divided by the codes' variance) plus `image_weight` times
the pixel MSE between the image rendered from the predicted code and the target. Everything is
seeded: the same space, steps, batch and seed give the same encoder on one machine.

A trained encoder is cached under `cache_dir()/encoders/` as one safetensors file whose header
holds its JSON config, named after the generator's sha256, the space, the steps, the batch, the
seed and a hash of the recipe (`encoder_for` loads it instead of training again).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pixelsmith.edit.latent.space import LatentSpace
from pixelsmith.errors import UserError

FORMAT = "pixelsmith-encoder/1"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class EncoderConfig:
    """What builds an encoder and what it was trained with (its file's header)."""

    kind: str
    dim: int
    layers: int
    image_shape: tuple[int, int, int]
    width: int = 16
    hidden: int = 256
    steps: int = 1000
    batch: int = 32
    seed: int = 0
    lr: float = 1e-3
    image_weight: float = 10.0
    model_sha256: str = ""

    def recipe_hash(self) -> str:
        """A short hash of the settings that change the weights (beyond the name's fields)."""
        import hashlib

        keep = {k: v for k, v in asdict(self).items() if k not in ("model_sha256",)}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:10]


class Encoder(nn.Module):
    """Images (N, C, H, W) in [0, 1] -> codes (N, *space.shape)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        c, h, w = cfg.image_shape
        downs = max(1, math.ceil(math.log2(max(h, w) / 4)))
        widths = [min(cfg.width * 2**i, cfg.width * 4) for i in range(downs + 1)]
        act = nn.LeakyReLU(0.2)
        mods: list[nn.Module] = [nn.Conv2d(c, widths[0], 3, 1, 1), act]
        for a, b in zip(widths, widths[1:], strict=False):
            mods += [nn.Conv2d(a, b, 3, 2, 1), act, nn.Conv2d(b, b, 3, 1, 1), act]
        self.body = nn.Sequential(*mods, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        out = cfg.dim * (cfg.layers if cfg.kind == "w+" else 1)
        self.head = nn.Sequential(nn.Linear(widths[-1] * 16, cfg.hidden), act)
        self.out = nn.Linear(cfg.hidden, out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        shape = (cfg.layers, cfg.dim) if cfg.kind == "w+" else (cfg.dim,)
        self.register_buffer("center", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(()))

    @property
    def code_shape(self) -> tuple[int, ...]:
        return tuple(self.center.shape)

    def forward(self, images: Tensor) -> Tensor:
        x = self.out(self.head(self.body(images * 2 - 1)))
        return self.center + self.scale * x.view(-1, *self.code_shape)


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def model_sha256(space: LatentSpace) -> str:
    """The sha256 of the generator's checkpoint file, or "tensors:" + the sha256 of its
    networks' tensors (`payload_hash`) for a model that was not loaded from a file."""
    model = space.model
    if model.checkpoint is not None and Path(model.checkpoint).is_file():
        from pixelsmith.utils.files import sha256_file

        path = Path(model.checkpoint).resolve()
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in _FILE_HASHES:
            _FILE_HASHES[key] = sha256_file(path)
        return _FILE_HASHES[key]
    from pixelsmith.utils.checkpoint_file import payload_hash

    tensors = {
        f"{n}/{k}": v for n, net in model.networks.items() for k, v in net.state_dict().items()
    }
    return "tensors:" + payload_hash(tensors)


def _labels(space: LatentSpace, n: int, g: torch.Generator) -> Tensor | None:
    if not space.classes:
        return None
    return torch.randint(0, space.classes, (n,), generator=g).to(space.device)


def _mixed(space: LatentSpace, codes: Tensor, other: Tensor, g: torch.Generator) -> Tensor:
    """W+ codes with the second half of the batch style-mixed at a random layer each."""
    n = len(codes)
    cut = torch.randint(1, space.layers, (n,), generator=g).to(codes.device)
    take = torch.arange(space.layers, device=codes.device)[None] >= cut[:, None]
    take[: n // 2] = False
    return torch.where(take[..., None], other, codes)


def _spread(space: LatentSpace, seed: int) -> tuple[Tensor, float]:
    """The mean code and the codes' standard deviation (over dims, from 2048 prior draws)."""
    draws = space.random(2048, seed=seed + 7919)
    return space.mean()[0].cpu(), float(draws.std(0).square().mean().sqrt())


def train_encoder(
    space: LatentSpace,
    steps: int = 1000,
    batch: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
) -> Encoder:
    """Train an encoder on `steps` batches of the generator's own samples (see the module doc)."""
    if steps < 0 or batch < 1:
        raise UserError(f"encoder steps must be >= 0 and batch >= 1, got {steps} and {batch}")
    cfg = EncoderConfig(
        space.kind,
        space.dim,
        space.layers,
        tuple(space.image_shape),
        steps=steps,
        batch=batch,
        seed=seed,
        model_sha256=model_sha256(space),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = Encoder(cfg)
    center, scale = _spread(space, seed)
    enc.center.copy_(center)
    enc.scale.fill_(scale)
    enc.to(space.device).train()
    opt = torch.optim.Adam(enc.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(seed)
    var = scale**2
    t0, last = time.monotonic(), time.monotonic()
    for step in range(steps):
        draw = int(torch.randint(0, 2**62, (1,), generator=g))
        codes = space.random(batch, seed=draw)
        if space.spec.mixes and space.layers > 1:
            codes = _mixed(space, codes, space.random(batch, seed=draw + 1), g)
        labels = _labels(space, batch, g)
        with torch.no_grad():
            target = space.render(codes, labels)
        pred = enc(target.clamp(0, 1))
        code_loss = (pred - codes).square().mean() / var
        image_loss = (space.render(pred, labels) - target).square().mean()
        loss = code_loss + cfg.image_weight * image_loss
        for group in opt.param_groups:  # short warm-up, then cosine to 10%
            w = min(1.0, (step + 1) / 50)
            group["lr"] = cfg.lr * w * (0.55 + 0.45 * math.cos(math.pi * step / max(1, steps)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        now = time.monotonic()
        if progress is not None and (now - last > 5 or step + 1 == steps):
            last = now
            rate = (step + 1) / max(now - t0, 1e-9)
            progress(
                f"    encoder step {step + 1}/{steps}  code {code_loss.item():.4f}  "
                f"pixel {image_loss.item():.5f}  {rate:.1f} steps/s  "
                f"eta {(steps - step - 1) / rate:.0f}s"
            )
    return enc.eval().requires_grad_(False)


def save_encoder(enc: Encoder, path: str | Path) -> Path:
    """Write an encoder as safetensors with its JSON config in the header (atomically)."""
    from safetensors.torch import save

    from pixelsmith.utils.files import atomic_write_bytes

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in enc.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(asdict(enc.cfg), sort_keys=True)}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save(state, metadata=meta))
    return path


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> Encoder:
    """An encoder written by `save_encoder` (no pickle)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable encoder file ({e}); delete it") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a pixelsmith encoder file ({FORMAT})")
    try:
        raw: dict[str, Any] = json.loads(meta["config"])
        raw["image_shape"] = tuple(raw["image_shape"])
        enc = Encoder(EncoderConfig(**raw))
        enc.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # a damaged or foreign file
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path} is not a usable encoder file ({first}); delete it") from None
    return enc.to(device).eval().requires_grad_(False)


def cache_path(space: LatentSpace, steps: int, batch: int = 32, seed: int = 0) -> Path:
    """Where the encoder for this generator, space and recipe is cached."""
    from pixelsmith.data.sources import cache_dir

    cfg = EncoderConfig(
        space.kind, space.dim, space.layers, tuple(space.image_shape), steps=steps, batch=batch
    )
    sha = model_sha256(space).replace("tensors:", "t")
    kind = space.kind.replace("+", "plus")
    name = f"{sha[:16]}-{kind}-s{steps}-b{batch}-seed{seed}-{cfg.recipe_hash()}.safetensors"
    return cache_dir() / "encoders" / name


def encoder_for(
    space: LatentSpace,
    steps: int = 1000,
    batch: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
    cache: bool = True,
) -> tuple[Encoder, dict[str, Any]]:
    """The cached encoder for this space and recipe, else a newly trained (and cached) one.

    Returns the encoder and what happened: {"trained": bool, "seconds": float, "path": str}.
    """
    path = cache_path(space, steps, batch, seed)
    if cache and path.is_file():
        try:
            enc = load_encoder(path, space.device)
            if enc.cfg.model_sha256 == model_sha256(space) and enc.code_shape == space.shape:
                if progress is not None:
                    progress(f"encoder: cached ({path})")
                return enc, {"trained": False, "seconds": 0.0, "path": str(path)}
        except UserError:
            pass  # a broken cache file is replaced below
    if progress is not None:
        progress(
            f"training an encoder for the {space.kind} space: {steps} steps of {batch} of the "
            "generator's own samples (once; it is cached for later runs)"
        )
    t0 = time.monotonic()
    enc = train_encoder(space, steps, batch, seed, progress)
    seconds = time.monotonic() - t0
    saved = ""
    if cache:
        try:
            saved = str(save_encoder(enc, path))
        except OSError:
            saved = ""  # an unwritable cache only costs the next run a retraining
    if progress is not None:
        where = f", cached at {saved}" if saved else " (not cached: the cache folder is unwritable)"
        progress(f"encoder trained in {seconds:.0f}s{where}")
    return enc, {"trained": True, "seconds": seconds, "path": saved}
