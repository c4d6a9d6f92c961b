"""The gap Athalye et al. (2018) found, on pixelsmith's input-transform defences: accuracy of the
shipped Fashion-MNIST classifier behind each defence under white-box APGD-CE (100 steps, Linf)
that differentiates the defence as written (naive), and under the same attack with BPDA
(straight-through) and, for the random defence, EoT over 8 draws. Accuracy is always that of the
defended model itself (one fresh draw for the random one). Black-box Square and the full suite
are `bench/robust.py --parts defences`.

    python bench/defence_gap.py [--n 500] [--eps 0.1] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from pixelsmith.data.sources import load_images
from pixelsmith.nn.attacks import apgd
from pixelsmith.robust import defences as d
from pixelsmith.robust.models import classifier

DEFENCES = ("jpeg:75", "bits:3", "median:3", "resize-pad:1.15", "denoise")


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--eot", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default="bench/results/defence_gap.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    s = load_images("fashion-mnist", split="test", channels=1, size=(28, 28), limit=a.n)
    x, y = s.images.float() / 255, s.labels.long()
    base = classifier("fmnist")
    rows = []
    print(f"fmnist behind each defence, first {a.n} test images, APGD-CE {a.steps} steps, "
          f"Linf {a.eps}: accuracy")  # fmt: skip
    print(f"{'defence':18} {'clean':>7} {'naive':>7} {'BPDA/EoT':>9} {'seconds':>8}")
    for spec in DEFENCES:
        defence = d.parse(spec)
        defended = d.Defended(base, defence)
        honest = d.Defended(base, defence, bpda=True, eot=a.eot if defence.random else 1)
        t0 = time.monotonic()
        row = {"defence": spec, "clean": accuracy(defended, x, y)}
        for tag, attacked in (("naive", defended), ("bpda_eot", honest)):
            adv = apgd(attacked, x, y, a.eps, steps=a.steps, seed=0)
            row[tag] = accuracy(defended, adv, y)
        row["seconds"] = round(time.monotonic() - t0, 1)
        rows.append(row)
        print(f"{spec:18} {row['clean']:7.3f} {row['naive']:7.3f} {row['bpda_eot']:9.3f} "
              f"{row['seconds']:8.0f}", flush=True)  # fmt: skip
    out = {"command": " ".join(["python", *sys.argv]), "n": a.n, "eps": a.eps,
           "steps": a.steps, "eot": a.eot, "rows": rows}  # fmt: skip
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
