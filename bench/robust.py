"""Robustness side by side: models under the standard suite, and input-transform defences under
the naive attack and under BPDA (and EoT for the random one), on the same test images.

    python bench/robust.py                                   # the shipped classifier, n = 500
    python bench/robust.py --models fmnist,zoo:fmnist-robust --n 1000 --plot docs/robust_curve.png
    python bench/robust.py --parts defences --defence-model fmnist --n 500   # one part at a time

Prints a table per part and writes bench/results/robust.json (every card and warning); a run of
one part keeps the other part's results in the file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from pixelsmith.data.sources import load_images
from pixelsmith.robust import defences as d
from pixelsmith.robust.evaluate import evaluate, plot_curves
from pixelsmith.robust.models import classifier

DEFENCES = ("jpeg:75", "bits:3", "median:3", "resize-pad:1.15", "denoise")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="fmnist")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--eps", default="0.05,0.1,0.2")
    p.add_argument("--defence-eps", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--queries", type=int, default=5000)
    p.add_argument("--eot", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--plot", help="the security curves as a PNG")
    p.add_argument("--json", default="bench/results/robust.json")
    p.add_argument("--parts", default="models,defences", help="models, defences or both")
    p.add_argument("--defence-model", help="the model behind the defences (default: the first)")
    p.add_argument("--defence-queries", type=int, help="Square's queries there (default --queries)")
    a = p.parse_args()
    parts = set(a.parts.split(","))
    torch.set_num_threads(a.threads)
    s = load_images("fashion-mnist", split="test", channels=1, size=(28, 28), limit=a.n)
    x, y = s.images.float() / 255, s.labels.long()
    eps = [float(e) for e in a.eps.split(",")]
    out: dict = {"models": {}, "defences": [], "commands": {}}
    curves = {}
    print(f"Fashion-MNIST test, first {a.n} images; standard suite (APGD-CE, APGD-T, Square), "
          f"{a.steps} steps, {a.queries} queries, Linf\n")  # fmt: skip
    for name in a.models.split(",") if "models" in parts else []:
        model = classifier(name)
        t0 = time.monotonic()
        card = {"model": name, "model_sha256": model.sha256, "data": "fashion-mnist:test"}
        ev = evaluate(model, x, y, eps, steps=a.steps, queries=a.queries, card=card)
        print(f"{name} ({time.monotonic() - t0:.0f} s)\n{ev.table()}\n")
        out["models"][name] = {"n": a.n, **ev.to_dict()}
        curves[name] = ev
    if "defences" in parts:
        out["defences"] = defences(classifier(a.defence_model or a.models.split(",")[0]), x, y, a)
    write(Path(a.json), out, parts)
    if a.plot and curves:
        plot_curves(curves, a.plot, title=f"Fashion-MNIST, {a.n} test images, Linf")
        print(f"wrote {a.plot}")


def write(path: Path, out: dict, parts: set[str]) -> None:
    """Write this run's parts into the JSON, keeping what it holds of the others (read now, so a
    run of the other part that ended meanwhile is kept)."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    merged = {"models": old.get("models", {}), "defences": old.get("defences", []),
              "commands": {**old.get("commands", {})}}  # fmt: skip
    for part in parts:
        merged[part] = out[part]
        merged["commands"][part] = " ".join(["python", *sys.argv])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=1) + "\n")


def defences(base, x, y, a) -> list[dict]:
    """Each defence in front of `base` under the naive suite and under BPDA (and EoT)."""
    rows = []
    print(f"defences in front of {base.name}, eps {a.defence_eps}: robust accuracy")
    print(f"{'defence':18} {'clean':>7} {'naive':>7} {'BPDA/EoT':>9}  warnings (naive / honest)")
    for spec in DEFENCES:
        defence = d.parse(spec)
        naive = d.Defended(base, defence)
        honest = d.Defended(base, defence, bpda=True, eot=a.eot if defence.random else 1)
        row = {"defence": spec}
        for tag, m in (("naive", naive), ("honest", honest)):
            queries = a.defence_queries or a.queries
            t0 = time.monotonic()
            ev = evaluate(m, x, y, [a.defence_eps], steps=a.steps, queries=queries,
                          card={"model": base.name, "defence": m.name})  # fmt: skip
            row[tag] = {"seconds": round(time.monotonic() - t0, 1), **ev.to_dict()}
        n_r, h_r = row["naive"]["rows"][0], row["honest"]["rows"][0]
        print(f"{spec:18} {n_r['clean']:7.3f} {n_r['robust']:7.3f} {h_r['robust']:9.3f}  "
              f"{len(row['naive']['warnings'])} / {len(row['honest']['warnings'])}")  # fmt: skip
        rows.append({"n": len(x), **row})
    return rows


if __name__ == "__main__":
    main()
