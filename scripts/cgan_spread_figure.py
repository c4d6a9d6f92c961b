"""docs/cgan-mode-seeking.png: rows of one class from each conditional GAN, from the same seeds.

One row per (class, model): the classes in the order given, each model's row under the last's,
so a collapsed class shows as a row of one repeated image above a varied one.

.venv/bin/python scripts/cgan_spread_figure.py BEFORE AFTER [--classes 5,7] [-o OUT.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelsmith.generate.load import load_model  # noqa: E402
from pixelsmith.imageio import save_image  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="conditional GAN runs or checkpoints, top to bottom")
    p.add_argument("--classes", default="5,7", help="class indices, one block of rows each")
    p.add_argument("-n", type=int, default=12, help="images per row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", default=str(ROOT / "docs" / "cgan-mode-seeking.png"))
    a = p.parse_args()
    models = [load_model(m) for m in a.models]
    rows = [
        m.sample(a.n, seed=a.seed, labels=[int(c)]) for c in a.classes.split(",") for m in models
    ]
    print(f"wrote {save_image(torch.cat(rows), a.out, nrow=a.n, scale=3)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
