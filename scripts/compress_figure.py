"""docs/compress.png: the teacher's samples above its distilled students', from the same seeds.

.venv/bin/python scripts/compress_figure.py RUN_0.5 RUN_0.25 [-o docs/compress.png]
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
    p.add_argument("students", nargs="+", help="distill run folders, one row each")
    p.add_argument("--teacher", default="zoo:fmnist-gan")
    p.add_argument("-n", type=int, default=12, help="images per row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", default=str(ROOT / "docs" / "compress.png"))
    a = p.parse_args()
    rows = [load_model(a.teacher).sample(a.n, seed=a.seed)]
    rows += [load_model(s).sample(a.n, seed=a.seed) for s in a.students]
    print(f"wrote {save_image(torch.cat(rows), a.out, nrow=a.n, scale=3)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
