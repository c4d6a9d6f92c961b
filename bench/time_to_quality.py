"""Time to quality: pixelsmith's unconditional GAN against a plain DCGAN at equal wall-clock.

For each budget (minutes of training-loop time on `--threads` CPU threads) this trains
pixelsmith's `dcgan` preset (or `--preset sc-gan`, self-conditioned on k-means clusters of the
images; neither uses the labels) through the library and a plain DCGAN written as the PyTorch-GAN
collection's `implementations/dcgan/dcgan.py` has it, then scores both the same way: FID and KID
of `--n` samples against the Fashion-MNIST test split (10k), with pixelsmith's shipped Fashion-MNIST
classifier features (`pixelsmith.metrics.feature_net("fmnist")`). Target (the issue): at every
budget FID_pixelsmith / FID_plain <= 0.25.

Budget rule: both loops check the clock before each step and stop at the first step boundary past
the budget; start-up (data loading, model building) and final sampling/scoring are outside it,
sc-gan's k-means fit (about 2 s) and periodic grids and checkpoints inside it (pixelsmith's loop
already counts them; the plain loop writes a 5x5 grid every 400 batches, as the collection's newer
scripts do).

The plain DCGAN, faithfully: latent 100, 32x32 images (Fashion-MNIST zero-padded by 2 pixels, as
the issue specifies, then scaled to [-1, 1]; the original resizes MNIST with Resize(32)); generator
Linear(100, 128*8*8) -> BN(128) -> up x2 -> conv 128->128 -> BN(eps=0.8) -> LeakyReLU(0.2) ->
up x2 -> conv 128->64 -> BN(eps=0.8) -> LeakyReLU -> conv 64->1 -> tanh; discriminator of four
stride-2 3x3 conv blocks 1->16->32->64->128 with LeakyReLU(0.2), Dropout2d(0.25) and BN(eps=0.8)
on the middle two, then Linear(512, 1) + sigmoid; BCE; Adam(2e-4, (0.5, 0.999)); batch 64,
shuffled epochs; generator step then discriminator step on the same fakes; conv weights N(0, 0.02),
BN weights N(1, 0.02). (`BatchNorm2d(n, 0.8)` in the original sets eps=0.8, kept as written.)
Its 32x32 samples have their 2-pixel border cropped off before scoring, the exact inverse of the
padding (padding and resizing back instead would cost the anchor FID ~6 from
the blur of the round trip alone). The "floor" row scores real train images against the test split.

Plain-DCGAN samples come from the generator in train mode (BatchNorm batch statistics over batches
of 64, as the original script samples) by default: at a 1-minute budget that scored better than
eval mode (running statistics); the other mode's FID is recorded beside it in the JSON.

Example: `python bench/time_to_quality.py --budgets 5,10,20` (about 75 minutes of training).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from pixelsmith.data.sources import load_images
from pixelsmith.metrics import feature_net, frechet_distance, kernel_inception_distance

SAMPLE_SEED = 12345
TARGET = 0.25
LATENT, IMG, BATCH = 100, 32, 64
PLAIN_SAMPLE_EVERY = 400
DEFAULT_PLAIN_BN = "train"


# ---------------------------------------------------------------- the plain DCGAN (PyTorch-GAN)


class PlainGenerator(nn.Module):
    """The collection's DCGAN generator: linear to 8x8, two nearest upsamples with convs."""

    def __init__(self) -> None:
        super().__init__()
        self.init_size = IMG // 4
        self.l1 = nn.Sequential(nn.Linear(LATENT, 128 * self.init_size**2))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(128),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 128, 3, stride=1, padding=1),
            nn.BatchNorm2d(128, eps=0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 64, 3, stride=1, padding=1),
            nn.BatchNorm2d(64, eps=0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, 1, 3, stride=1, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        x = self.l1(z).view(len(z), 128, self.init_size, self.init_size)
        return self.conv_blocks(x)


class PlainDiscriminator(nn.Module):
    """The collection's DCGAN discriminator: four stride-2 conv blocks, linear, sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for cout, bn in ((16, False), (32, True), (64, True), (128, False)):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            layers.append(nn.Dropout2d(0.25))
            if bn:
                layers.append(nn.BatchNorm2d(cout, eps=0.8))
            cin = cout
        self.model = nn.Sequential(*layers)
        ds = IMG // 2**4
        self.adv_layer = nn.Sequential(nn.Linear(128 * ds**2, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.adv_layer(self.model(x).flatten(1))


def weights_init_normal(m: nn.Module) -> None:
    """Conv weights N(0, 0.02); BatchNorm weights N(1, 0.02), biases 0 (as the original)."""
    name = type(m).__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def plain_data(images: Tensor) -> Tensor:
    """Fashion-MNIST uint8 (N, 28, 28) zero-padded to (N, 1, 32, 32)."""
    return F.pad(images.unsqueeze(1), (2, 2, 2, 2))


def save_grid(images: Tensor, path: Path, nrow: int = 5) -> None:
    """Save images in [0, 1] (N, 1, H, W) as a PNG grid."""
    n, _, h, w = images.shape
    rows = (n + nrow - 1) // nrow
    grid = torch.zeros(rows * h, nrow * w)
    for i, im in enumerate(images):
        r, c = divmod(i, nrow)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = im[0]
    Image.fromarray((grid.clamp(0, 1) * 255).round().byte().numpy()).save(path)


def train_plain(
    data32: Tensor, minutes: float, seed: int, out_dir: Path, progress: bool = True
) -> tuple[PlainGenerator, dict[str, Any]]:
    """Train the plain DCGAN for a wall-clock budget; returns G and its counters."""
    torch.manual_seed(seed)
    G, D = PlainGenerator(), PlainDiscriminator()
    G.apply(weights_init_normal)
    D.apply(weights_init_normal)
    bce = nn.BCELoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    budget, step, nimg, pos = minutes * 60, 0, 0, len(data32)
    perm = torch.empty(0, dtype=torch.long)
    g_loss = d_loss = torch.zeros(())
    t0 = last = time.monotonic()
    while time.monotonic() - t0 < budget:
        if pos >= len(data32):  # a new shuffled epoch; the last batch may be short
            perm, pos = torch.randperm(len(data32), generator=gen), 0
        real = data32[perm[pos : pos + BATCH]].float() / 127.5 - 1
        pos += BATCH
        b = len(real)
        valid, fake = torch.ones(b, 1), torch.zeros(b, 1)

        opt_g.zero_grad()
        gen_imgs = G(torch.randn(b, LATENT, generator=gen))
        g_loss = bce(D(gen_imgs), valid)
        g_loss.backward()
        opt_g.step()

        opt_d.zero_grad()
        d_loss = 0.5 * (bce(D(real), valid) + bce(D(gen_imgs.detach()), fake))
        d_loss.backward()
        opt_d.step()

        step, nimg = step + 1, nimg + b
        if step % PLAIN_SAMPLE_EVERY == 0:
            save_grid((gen_imgs.detach()[:25] + 1) / 2, out_dir / f"grid-{step:06d}.png")
        now = time.monotonic()
        if progress and now - last > 2:
            last, spent = now, now - t0
            print(
                f"\rplain dcgan: step {step}, {nimg / 1000:.1f} kimg, {nimg / spent:.0f} img/s, "
                f"{max(budget - spent, 0):.0f}s left, D {d_loss.item():.3f} G {g_loss.item():.3f}",
                end="",
                file=sys.stderr,
            )
    elapsed = time.monotonic() - t0
    if progress:
        print(file=sys.stderr)
    return G, {"steps": step, "nimg": nimg, "train_s": elapsed}


@torch.no_grad()
def sample_plain(G: PlainGenerator, n: int, seed: int, bn: str) -> Tensor:
    """n images in [0, 1] (n, 1, 32, 32); bn='eval' uses running stats, 'train' batch-64 stats."""
    z = torch.randn(n, LATENT, generator=torch.Generator().manual_seed(seed))
    net = copy.deepcopy(G).train() if bn == "train" else G.eval()
    chunk = BATCH if bn == "train" else 500
    out = [(net(z[i : i + chunk]) + 1) / 2 for i in range(0, n, chunk)]
    return torch.cat(out).clamp(0, 1)


# ---------------------------------------------------------------- pixelsmith


def pixelsmith_config(
    minutes: float, seed: int, threads: int, sets: list[str], preset: str = "dcgan"
) -> tuple[Any, list[str]]:
    """A pixelsmith GAN preset on Fashion-MNIST for a budget, with the user's --set overrides."""
    from pixelsmith.errors import UserError
    from pixelsmith.train.config import build_config

    overrides = [
        "data.source=fashion-mnist",
        f"train.minutes={minutes}",
        f"train.seed={seed}",
        f"train.threads={threads}",
        "train.device=cpu",
        *sets,
    ]
    try:
        return build_config(preset, overrides=overrides), overrides
    except UserError as e:
        sys.exit(f"--set: {e}")


def train_pixelsmith(
    minutes: float, seed: int, threads: int, sets: list[str], runs: Path, n: int, preset: str
) -> tuple[Tensor, dict[str, Any]]:
    """Train a pixelsmith preset through the library and sample n images."""
    import pixelsmith
    from pixelsmith.train.loop import train

    cfg, overrides = pixelsmith_config(minutes, seed, threads, sets, preset)
    run = train(cfg, out_root=runs, progress=True)
    torch.set_num_threads(threads)
    model = pixelsmith.load(str(run))
    images = model.sample(n, seed=SAMPLE_SEED)
    man = model.manifest
    stats = {"steps": man["step"], "nimg": man["nimg"], "train_s": man["elapsed_s"]}
    return images, {**stats, "run": str(run), "overrides": overrides}


# ---------------------------------------------------------------- scoring and reporting


def score(images: Tensor, ref: Tensor, kid_size: int) -> dict[str, float]:
    """FID and KID of images against reference features."""
    f = features(images)
    km, ks = kernel_inception_distance(f, ref, subsets=100, subset_size=kid_size, seed=0)
    return {"fid": frechet_distance(f, ref), "kid_mean": km, "kid_std": ks}


def features(images: Tensor, batch: int = 1000) -> Tensor:
    """Shipped-classifier features; the plain model's 32x32 padded images lose their border."""
    if images.shape[-1] == IMG:
        images = images[..., 2:-2, 2:-2]
    net = feature_net("fmnist")
    return torch.cat([net(images[i : i + batch])[0] for i in range(0, len(images), batch)])


def row(name: str, r: dict[str, Any]) -> str:
    """One table row."""
    steps = f"{r['steps']:>7d}" if "steps" in r else f"{'-':>7}"
    nimg = f"{r['nimg']:>9d}" if "nimg" in r else f"{'-':>9}"
    rate = f"{r['nimg'] / r['train_s']:>7.0f}" if "nimg" in r else f"{'-':>7}"
    kid = f"{r['kid_mean']:.4f} ± {r['kid_std']:.4f}"
    return f"  {name:<28} {steps} {nimg} {rate} {r['fid']:>9.3f}  {kid}"


HEADER = f"  {'model':<28} {'steps':>7} {'images':>9} {'img/s':>7} {'FID':>9}  KID mean ± std"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="5,10,20", help="training budgets in minutes, a,b,c")
    ap.add_argument("--n", type=int, default=10000, help="samples scored per model")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for both")
    ap.add_argument("--only", choices=("pixelsmith", "plain", "both"), default="both")
    ap.add_argument("--out", default="bench/results/time_to_quality.json", help="JSON results")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="pixelsmith config"
    )
    ap.add_argument("--seed", type=int, default=0, help="training seed for both")
    ap.add_argument(
        "--preset",
        default="dcgan",
        choices=("dcgan", "sc-gan"),
        help="pixelsmith's unconditional GAN preset (sc-gan: self-conditioned on k-means clusters)",
    )
    ap.add_argument("--plain-bn", choices=("eval", "train"), default=DEFAULT_PLAIN_BN)
    ap.add_argument("--runs", default=None, help="keep run folders here (default: temporary)")
    args = ap.parse_args()
    try:
        args.budget_list = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        ap.error(f"--budgets must be minutes separated by commas, got {args.budgets!r}")
    if not args.budget_list or min(args.budget_list) <= 0:
        ap.error(f"--budgets must be positive minutes, got {args.budgets!r}")
    if args.n < 2:
        ap.error(f"--n must be at least 2, got {args.n}")
    if args.threads < 1:
        ap.error(f"--threads must be at least 1, got {args.threads}")
    bad = [s for s in args.set if "=" not in s]
    if bad:
        ap.error(f"--set takes KEY=VALUE, got {bad[0]!r}")
    return args


def main() -> None:
    """Run every budget, print the tables and write the JSON."""
    args = parse_args()
    if args.only != "plain":
        pixelsmith_config(args.budget_list[0], args.seed, args.threads, args.set, args.preset)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    if args.runs is None:
        tmp = tempfile.TemporaryDirectory(prefix="ttq-")
        runs = Path(tmp.name)
    else:
        runs = Path(args.runs)
        runs.mkdir(parents=True, exist_ok=True)

    net = feature_net("fmnist")
    card = {"name": net.name, "sha256": net.sha256, "dim": net.dim}
    torch.set_num_threads(args.threads)
    test = load_images("fashion-mnist", "test", channels=1).images[:, 0]
    train_u8 = load_images("fashion-mnist", "train", channels=1).images[:, 0]
    ref = features(test.unsqueeze(1).float() / 255)
    kid_size = min(1000, args.n)
    pick = torch.randperm(len(train_u8), generator=torch.Generator().manual_seed(args.seed))
    real = train_u8[pick[: args.n]]
    data32 = plain_data(train_u8)
    floor = score(real.unsqueeze(1).float() / 255, ref, kid_size)

    import pixelsmith
    from pixelsmith.deploy.choice import cpu_signature

    protocol = {
        "metrics": ["FID", "KID"],
        "feature_network": card,
        "n_samples": args.n,
        "reference": f"fashion-mnist test split, {len(test)} images, 28x28",
        "resize_rule": net.resize + "; the plain model's 32x32 output cropped to 28x28 first",
        "kid": {
            "kernel": "(x.y/d + 1)^3",
            "estimator": "unbiased MMD^2",
            "subsets": 100,
            "subset_size": kid_size,
            "seed": 0,
        },
        "fid": "float64 means/covariances; tr sqrt via eigh of sqrt(C1) C2 sqrt(C1)",
        "sample_seed": SAMPLE_SEED,
        "train_seed": args.seed,
        "torch_threads": args.threads,
        "device": "cpu",
        "budgets_minutes": args.budget_list,
        "budget_rule": "training-loop time only, incl. periodic grids/checkpoints; stop at the "
        "first step boundary past the budget",
        "floor": f"{args.n} random train images (seed {args.seed}) against the reference",
        "plain_dcgan": {
            "source": "eriklindernoren/PyTorch-GAN implementations/dcgan/dcgan.py",
            "data": "fashion-mnist train 60000, zero-padded 28->32, [-1, 1]",
            "sampling_bn": args.plain_bn,
            "scoring_resize": "2-pixel border cropped, 32->28 (the inverse of its padding)",
            "grid_every": PLAIN_SAMPLE_EVERY,
        },
        "pixelsmith": {"preset": args.preset, "sets": args.set},
    }
    report: dict[str, Any] = {
        "benchmark": "time_to_quality",
        "target": f"FID_pixelsmith / FID_plain <= {TARGET} at every budget",
        "protocol": protocol,
        "environment": {
            "pixelsmith": pixelsmith.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "cpu": cpu_signature(),
            "loadavg_at_start": list(os.getloadavg()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "floor": floor,
        "budgets": [],
    }

    def write() -> None:
        out.write_text(json.dumps(report, indent=2) + "\n")

    models = ["pixelsmith", "plain"] if args.only == "both" else [args.only]
    other_bn = "train" if args.plain_bn == "eval" else "eval"
    tables = []
    for bi, minutes in enumerate(args.budget_list):
        entry: dict[str, Any] = {"minutes": minutes, "results": {}}
        order = models if bi % 2 == 0 else models[::-1]  # interleave to spread machine drift
        for name in order:
            print(f"== {minutes:g} min: {name}", file=sys.stderr)
            torch.set_num_threads(args.threads)
            if name == "pixelsmith":
                images, info = train_pixelsmith(
                    minutes, args.seed, args.threads, args.set, runs, args.n, args.preset
                )
                torch.set_num_threads(args.threads)
                if tmp is not None:
                    info.pop("run")  # a temporary folder, gone when the script ends
                entry["results"][name] = {**info, **score(images, ref, kid_size)}
            else:
                G, info = train_plain(data32, minutes, args.seed, runs / f"plain-{minutes:g}min")
                res = {**info, "sampling_bn": args.plain_bn}
                res.update(
                    score(sample_plain(G, args.n, SAMPLE_SEED, args.plain_bn), ref, kid_size)
                )
                alt = score(sample_plain(G, args.n, SAMPLE_SEED, other_bn), ref, kid_size)
                res[f"fid_bn_{other_bn}"] = alt["fid"]
                entry["results"][name] = res
        for r in entry["results"].values():
            r["img_per_s"] = r["nimg"] / r["train_s"]
        if len(entry["results"]) == 2:
            ratio = entry["results"]["pixelsmith"]["fid"] / entry["results"]["plain"]["fid"]
            entry["fid_ratio"], entry["target_met"] = ratio, ratio <= TARGET
        report["budgets"].append(entry)
        write()
        lines = [f"budget {minutes:g} min ({args.threads} threads, n={args.n})", HEADER]
        for name in models:
            label = (
                f"pixelsmith {args.preset}"
                if name == "pixelsmith"
                else f"plain DCGAN (bn {args.plain_bn})"
            )
            lines.append(row(label, entry["results"][name]))
        lines.append(row("floor: train vs test", floor))
        if "fid_ratio" in entry:
            verdict = "met" if entry["target_met"] else "MISSED"
            lines.append(
                f"  FID pixelsmith / plain = {entry['fid_ratio']:.3f} "
                f"(target <= {TARGET}: {verdict})"
            )
        tables.append("\n".join(lines))
        print("\n" + tables[-1] + "\n", flush=True)

    ratios = [b["target_met"] for b in report["budgets"] if "target_met" in b]
    if ratios:
        report["all_met"] = all(ratios)
    write()
    if len(tables) > 1:
        print("\n\n".join(tables))
    if ratios:
        print(f"\ntarget at every budget: {'met' if all(ratios) else 'MISSED'}")
    print(f"results: {out}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
