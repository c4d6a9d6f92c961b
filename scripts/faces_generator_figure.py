"""docs/faces_generator.png and the copying check of the face generator.

    python scripts/faces_generator_figure.py [--model zoo:faces-stylegan] [--n 1000]

Top: 32 samples (seeds 0-31). Bottom: 8 samples, each above its nearest training face (pixel L2,
flips included). Printed: the median distance of n samples to their nearest training face,
against the median distance of each training face to its nearest other training face: a
generator that copies its 100 faces would score far below the training faces' own spacing.
Writes the numbers to bench/results/faces_generator.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pixelsmith.data.sources import load_images
from pixelsmith.generate import load_model
from pixelsmith.imageio import make_grid, save_image

ROOT = Path(__file__).resolve().parents[1]


def nearest(x: torch.Tensor, ref: torch.Tensor, skip_self: bool = False) -> torch.Tensor:
    """Index and RMS distance of each x's nearest ref image (ref and its mirror images)."""
    both = torch.cat([ref, ref.flip(-1)]).flatten(1)
    d = torch.cdist(x.flatten(1), both) / both.shape[1] ** 0.5
    if skip_self:  # a training face against the others: drop itself and its own mirror
        n = len(ref)
        idx = torch.arange(len(x))
        d[idx, idx] = float("inf")
        d[idx, idx + n] = float("inf")
    best, where = d.min(1)
    return torch.stack([where.float() % len(ref), best], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zoo:faces-stylegan")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    train = load_images("lfw-faces", size=28).as_float()
    samples = model.sample(args.n, seed=0)
    s = nearest(samples, train)
    t = nearest(train, train, skip_self=True)
    result = {
        "command": "python scripts/faces_generator_figure.py",
        "model": args.model,
        "samples": args.n,
        "sample_to_nearest_training_rms_median": round(float(s[:, 1].median()), 4),
        "training_to_nearest_other_training_rms_median": round(float(t[:, 1].median()), 4),
        "samples_closer_than_any_training_pair": round(
            float((s[:, 1] < t[:, 1].min()).float().mean()), 4
        ),
    }
    print(json.dumps(result, indent=1))
    out = ROOT / "bench" / "results" / "faces_generator.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    nearest_faces = train[s[:8, 0].long()]
    top = make_grid(samples[:32], nrow=16, pad=2)
    below = make_grid(torch.cat([samples[:8], nearest_faces]), nrow=8, pad=2)
    w = max(top.shape[-1], below.shape[-1])
    below = torch.nn.functional.pad(below, (0, w - below.shape[-1]), value=1.0)
    fig = torch.cat([top, torch.ones(top.shape[0], 8, w), below], 1)
    save_image(fig, ROOT / "docs" / "faces_generator.png", scale=3)
    print("wrote docs/faces_generator.png")


if __name__ == "__main__":
    main()
