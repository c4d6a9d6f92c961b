"""Train the learned watermark (pixelsmith.provenance.learned) and write it to the zoo.

Patches of the Debian training photos (`training_photos()`, 64x64, `crop_patches`), a random
64-bit message per patch; each batch goes through one attack drawn at random among identity,
JPEG 40-92 (real Pillow JPEG forward, identity backward), resize by 0.25-0.8 and back, a crop
keeping 25-90% of the area, Gaussian noise, Gaussian blur and brightness/contrast/saturation,
then 8-bit rounding (straight-through). The first `--warmup` steps use no attack, so a code forms
before it must survive handling. Losses: the message's binary cross-entropy, plus an image term:
the residual is scaled to a fixed RMS (40 dB), so the image term is its squared error weighted
by the inverse of local contrast, which moves the energy from flat areas into texture.

    .venv/bin/python scripts/train_learned_watermark.py --minutes 28 --export
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelsmith import zoo  # noqa: E402
from pixelsmith.data.patches import crop_patches  # noqa: E402
from pixelsmith.data.photos import describe_files, training_photos  # noqa: E402
from pixelsmith.provenance import learned as lw  # noqa: E402
from pixelsmith.version import __version__  # noqa: E402

TRAIN_ATTACKS = ("identity", "jpeg", "jpeg", "resize", "crop", "noise", "blur", "colour")


def visibility_weight(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights, mean 1 per image: high where the image is flat (5x5 luma contrast)."""
    y = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    z = F.pad(y, (2, 2, 2, 2), mode="replicate")
    mean = F.avg_pool2d(z, 5, 1)
    var = (F.avg_pool2d(z * z, 5, 1) - mean * mean).clamp_min(0)
    w = 1 / (var.sqrt() + 0.02)
    return w / w.mean((2, 3), keepdim=True)


def evaluate(model: lw.LearnedWatermark, patches: torch.Tensor, seed: int) -> dict[str, float]:
    """Bit accuracy on held-back patches after each attack, and the mean PSNR."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (len(patches), model.bits), generator=g)
    out = {}
    with torch.no_grad():
        marked = model(patches, bits)
        mse = (marked - patches).pow(2).mean((1, 2, 3))
        out["psnr"] = float((-10 * torch.log10(mse)).mean())
        for kind in lw.ATTACKS:
            y, _ = lw.attack(marked, kind, g)
            acc = ((model.logits(y) > 0) == bits.bool()).float().mean()
            out[f"bit_accuracy_{kind}"] = float(acc)
    model.train()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=28.0, help="wall-clock budget for training")
    ap.add_argument("--steps", type=int, default=100_000, help="at most this many steps")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--patches", type=int, default=12_000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--image-weight", type=float, default=0.1)
    ap.add_argument("--sync-weight", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--export", action="store_true", help="write zoo:learned-watermark")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    photos = training_photos()
    t0 = time.time()
    data = torch.from_numpy(crop_patches(photos, args.patches, args.patch, seed=args.seed))
    held = crop_patches(photos, 192, 128, seed=args.seed + 1000)
    held = torch.from_numpy(held).float() / 255
    print(f"{len(data)} patches of {args.patch} in {time.time() - t0:.0f} s", flush=True)

    model = lw.LearnedWatermark(lw.MESSAGE_BITS)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    budget = args.minutes * 60
    start, step, recent = time.time(), 0, []
    while step < args.steps and time.time() - start < budget:
        frac = (time.time() - start) / budget
        for group in opt.param_groups:  # cosine decay over the wall-clock budget
            group["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1))))
        idx = torch.randint(0, len(data), (args.batch,), generator=g)
        x = data[idx].float() / 255
        if torch.rand((), generator=g) < 0.5:
            x = x.flip(3)
        bits = torch.randint(0, 2, (args.batch, model.bits), generator=g)
        r = model.residual(x, bits)
        marked = (x + r).clamp(0, 1)
        kind = (
            "identity"
            if step < args.warmup
            else TRAIN_ATTACKS[int(torch.randint(0, len(TRAIN_ATTACKS), (), generator=g))]
        )
        y, shift = lw.attack(marked, kind, g)
        folded = model.decoder.fold(lw.half(y))
        logits = model.decoder.read(folded, shift)
        msg = F.binary_cross_entropy_with_logits(logits, bits.float())
        # Unsure at a wrong tile offset, so that the decoder's search finds the right one.
        wrong = [int(v) for v in torch.randint(1, lw.TILE, (2,), generator=g)]
        wrong = ((shift[0] + wrong[0]) % lw.TILE, (shift[1] + wrong[1]) % lw.TILE)
        sync = model.decoder.read(folded, wrong).pow(2).mean()
        image = (r.pow(2) * visibility_weight(x)).mean() / lw.RMS**2
        loss = msg + args.image_weight * image + args.sync_weight * sync
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc = float(((logits > 0) == bits.bool()).float().mean())
        recent.append((msg.item(), image.item(), acc, sync.item()))
        step += 1
        if step % 100 == 0:
            m = np.mean(recent, 0)
            recent = []
            print(
                f"step {step} ({time.time() - start:.0f} s): message BCE {m[0]:.3f}, "
                f"image {m[1]:.3f}, sync {m[3]:.3f}, bit accuracy {m[2]:.3f} (last {kind})",
                flush=True,
            )
    minutes = (time.time() - start) / 60
    metrics = evaluate(model, held, args.seed + 7)
    print(f"trained {step} steps in {minutes:.1f} min; held-back patches (128x128): {metrics}")
    if not args.export:
        return
    tensors = {
        f"net/{name}/{k}": v.detach().clone().contiguous()
        for name, net in (("encoder", model.encoder), ("decoder", model.decoder))
        for k, v in net.state_dict().items()
    }
    command = "python scripts/train_learned_watermark.py " + " ".join(sys.argv[1:])
    out = zoo.export_tensors(
        name=lw.NAME,
        tensors=tensors,
        manifest={
            "family": "provenance",
            "preset": lw.NAME,
            "image_shape": [3, args.patch, args.patch],
            "message_bits": model.bits,
            "width": 32,
            "pixelsmith_version": __version__,
        },
        recipe={
            "command": command,
            "seed": args.seed,
            "steps": step,
            "train_minutes": round(minutes, 1),
            "threads": args.threads,
            "batch": args.batch,
            "attacks": list(TRAIN_ATTACKS),
            "data": {
                "what": f"{args.patches} random {args.patch}x{args.patch} patches of the Debian "
                "training photos (pixelsmith.data.photos.training_photos)",
                "files": describe_files(photos),
            },
        },
        results={
            "metrics": {k: round(v, 4) for k, v in metrics.items()},
            "command": command + " (192 held-back 128x128 patches of the training photos)",
        },
        task="learned invisible watermark: 64 bits at 40 dB on any image size (HiDDeN-style)",
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
