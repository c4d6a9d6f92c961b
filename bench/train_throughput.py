"""Training throughput of the default GAN: img/s, MFU against measured matmul peak, and the
same step written the plain way (eager, contiguous NCHW, DataLoader, no tuning), interleaved.

    python bench/train_throughput.py [--rounds 5] [--steps 20] [--threads 2] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from pixelsmith.train.config import build_config
from pixelsmith.train.loop import Trainer


def matmul_peak(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of an n x n matmul."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


class PlainStep:
    """The default GAN's networks trained the way tutorials write it."""

    def __init__(self, trainer: Trainer):
        fam = trainer.family
        self.G = type(fam.networks["G"])(fam.cfg, fam.image_shape).to(
            memory_format=torch.contiguous_format
        )
        self.D = type(fam.networks["D"])(fam.cfg, fam.image_shape).to(
            memory_format=torch.contiguous_format
        )
        c = fam.cfg
        self.opt_g = torch.optim.Adam(self.G.parameters(), c.lr_g, betas=c.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), c.lr_d, betas=c.betas)
        self.z_dim = c.z_dim
        images = trainer.data.images.float() / 255.0
        self.loader = DataLoader(
            TensorDataset(images), batch_size=trainer.cfg.train.batch, shuffle=True, drop_last=True
        )
        self.it = iter(self.loader)

    def batch(self) -> torch.Tensor:
        try:
            return next(self.it)[0]
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)[0]

    def __call__(self) -> None:
        real = self.batch() * 2 - 1
        n = real.shape[0]
        z = torch.randn(n, self.z_dim)
        fake = self.G(z)
        self.opt_d.zero_grad()
        loss_d = F.softplus(-self.D(real)).mean() + F.softplus(self.D(fake.detach())).mean()
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        loss_g = F.softplus(-self.D(fake)).mean()
        loss_g.backward()
        self.opt_g.step()


def timed(fn, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--profile", action="store_true", help="print the top operators of one step")
    args = ap.parse_args()

    peak = matmul_peak(args.threads)
    overrides = [
        f"data.source={args.data}",
        "train.steps=1000000",
        f"train.threads={args.threads}",
        *args.set,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(build_config("dcgan", overrides=overrides), tmp, progress=False)
        batch = trainer.cfg.train.batch
        plain = PlainStep(trainer)
        for _ in range(3):
            trainer.step(), plain()
        with FlopCounterMode(display=False) as counter:
            trainer.step()
        flops = counter.get_total_flops()
        fast_t, plain_t = [], []
        for _ in range(args.rounds):
            fast_t.append(timed(trainer.step, args.steps))
            plain_t.append(timed(plain, args.steps))
        if args.profile:
            with torch.profiler.profile() as prof:
                for _ in range(5):
                    trainer.step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    fast = args.steps * batch / statistics.median(fast_t)
    slow = args.steps * batch / statistics.median(plain_t)
    per_img = flops / batch
    mfu = fast * per_img / (peak * 1e9)
    print(f"threads {args.threads}, batch {batch}, overrides {args.set or 'none'}")
    print(f"matmul peak (fp32, 2048^2):       {peak:7.1f} GFLOP/s")
    print(f"model FLOPs per image per step:   {per_img / 1e6:7.1f} MFLOP (fwd+bwd, counted)")
    print(f"{'':32s} {'img/s':>8s} {'GFLOP/s':>8s} {'MFU':>6s}")
    print(f"{'pixelsmith step':32s} {fast:8.1f} {fast * per_img / 1e9:8.1f} {100 * mfu:5.1f}%")
    slow_mfu = slow * per_img / (peak * 1e9)
    print(
        f"{'plain eager step':32s} {slow:8.1f} {slow * per_img / 1e9:8.1f} {100 * slow_mfu:5.1f}%"
    )
    print(f"speed-up over plain: {fast / slow:.2f}x   (median of {args.rounds} interleaved rounds)")
    print("targets: MFU >= 50%, speed-up >= 1.5x")


if __name__ == "__main__":
    main()
