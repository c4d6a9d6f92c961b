"""How often a fresh random image id does not read back from a marked grid, with one try and
with the retries `pixelsmith sample` makes (pixelsmith.jobs.stamp.ID_TRIES).

The grid is what tests/test_stamp.py marks: three 128x128 samples of an untrained tiny GAN (the
tests' TINY_GAN, seed 0), tiled by `make_grid`; the key is the tests' fixed one.

    python bench/watermark_ids.py [--n 300]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pixelsmith.imageio import make_grid
from pixelsmith.jobs.stamp import ID_TRIES, Stamp, reads_back
from pixelsmith.models.gan import GAN, GANConfig
from pixelsmith.provenance.keys import WatermarkKey
from pixelsmith.provenance.watermark import embed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="image ids to try")
    args = ap.parse_args()
    torch.manual_seed(0)
    gan = GAN(GANConfig(z_dim=8, g_channels=4, d_channels=4, max_channels=16), (3, 128, 128), 0)
    gan.add_ema_copies()
    grid = make_grid(gan.sample(3, seed=0))
    stamp = Stamp(key=WatermarkKey(np.random.default_rng(7).bytes(32)))
    once = 0
    for _ in range(args.n):
        message = stamp.image_message()
        once += not reads_back(embed(grid, stamp.key, message), stamp.key, message)
    print(f"one try: {once} of {args.n} grids left unmarked")
    lost = sum(stamp.mark(grid).note is not None for _ in range(args.n))
    print(f"{ID_TRIES} tries (as shipped): {lost} of {args.n} grids left unmarked")


if __name__ == "__main__":
    main()
