"""Generated-image detection at 28x28, leave one family out: the CNN detector (Wang et al. 2020,
blur + JPEG augmentation) and the DCT baseline (Frank et al. 2020) in the same run.

For each generator family F, both detectors are trained on real Fashion-MNIST training images
against the samples of every family but F, then tested on the 10k test split's first images
against F's samples (drawn with other seeds than the training samples). Reported per family:
average precision (scikit-learn's, an independent reference), accuracy at the 0.5 threshold,
and real and fake accuracy apart (AP can stay high while a fixed threshold fails), clean, after
JPEG 75 and after resizing to half and back; plus the detector trained on every family ("seen",
the zoo's `fmnist-detector`), and PGD against it (evasion).

Samples are 8-bit (what a PNG of them holds) and cached in the pixelsmith cache. Families:
gan and stylegan are the zoo's; the others are runs this script is given (their commands are
in docs/forensics.md):

    .venv/bin/python bench/forensics_generated.py --family vae=RUN --family pixelcnn=RUN \\
        --family diffusion=RUN --family distilled=RUN
    .venv/bin/python bench/forensics_generated.py ... --ship    # also export zoo:fmnist-detector
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pixelsmith  # noqa: E402
from pixelsmith import zoo  # noqa: E402
from pixelsmith.data import degrade  # noqa: E402
from pixelsmith.data.sources import cache_dir, load_images  # noqa: E402
from pixelsmith.forensics import generated as gen  # noqa: E402
from pixelsmith.nn.attacks import pgd  # noqa: E402
from pixelsmith.utils.checkpoint_file import resolve_checkpoint  # noqa: E402
from pixelsmith.utils.files import sha256_file  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "forensics_generated.json"
ZOO_FAMILIES = {"gan": "zoo:fmnist-gan", "stylegan": "zoo:fmnist-stylegan"}
ORDER = ("gan", "stylegan", "vae", "pixelcnn", "diffusion", "distilled")
# Sampling options per family (the diffusion preset's scoring setting, as docs/results.md uses).
OPTIONS = {"diffusion": {"steps": 25}}
TRAIN_SEED, TEST_SEED = 11, 22
CONDITIONS = ("clean", "jpeg75", "resize0.5")
PGD_EPS = (1 / 255, 2 / 255, 4 / 255)
NAMES = {"cnn": "CNN", "dct": "DCT", "probe": "probe", "ensemble": "CNN + probe"}


def model_file(ref: str) -> Path:
    """The checkpoint file behind a run, checkpoint or zoo:NAME."""
    if ref.startswith("zoo:"):
        return zoo.path(ref)
    return resolve_checkpoint(ref)


def samples(name: str, ref: str, n: int, seed: int) -> torch.Tensor:
    """n 8-bit samples of a model, cached by the checkpoint's hash, the options and the seed."""
    path = model_file(ref)
    opts = OPTIONS.get(name, {})
    key = f"{sha256_file(path)}-{json.dumps(opts, sort_keys=True)}-{n}-{seed}"
    target = (
        cache_dir() / "forensics" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"
    )
    if target.exists():
        return torch.from_numpy(np.load(target)).float() / 255
    model = pixelsmith.load(path)
    t, out = time.perf_counter(), []
    for i in range(0, n, 250):
        out.append(model.sample(min(250, n - i), seed=seed * 1000 + i, **opts))
        print(
            f"  {name}: {i + len(out[-1])}/{n} samples, {time.perf_counter() - t:.0f} s", flush=True
        )
    x = torch.cat(out)
    if x.shape[1] != 1:
        x = x.mean(1, keepdim=True)
    u8 = torch.round(x.clamp(0, 1) * 255).to(torch.uint8).numpy()
    target.parent.mkdir(parents=True, exist_ok=True)
    np.save(target, u8)
    return torch.from_numpy(u8).float() / 255


def condition(x: torch.Tensor, how: str) -> torch.Tensor:
    """The test images as a user might pass them on: as made, JPEG 75, or halved and restored."""
    if how == "jpeg75":
        return degrade.jpeg(x, 75)
    if how == "resize0.5":
        small = F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)
        return gen.quantise(F.interpolate(small, size=x.shape[-2:], mode="bilinear"))
    return x


def measure(score_real: torch.Tensor, score_fake: torch.Tensor) -> dict[str, float]:
    """AP (scikit-learn), accuracy at 0.5, and real and fake accuracy apart."""
    s = torch.cat([score_real, score_fake]).numpy()
    y = np.r_[np.zeros(len(score_real)), np.ones(len(score_fake))]
    real_acc = float((score_real < 0.5).float().mean())
    fake_acc = float((score_fake >= 0.5).float().mean())
    return {
        "ap": round(float(average_precision_score(y, s)), 4),
        "acc": round((real_acc * len(score_real) + fake_acc * len(score_fake)) / len(s), 4),
        "real_acc": round(real_acc, 4),
        "fake_acc": round(fake_acc, 4),
    }


def evaluate(score, real_test: torch.Tensor, fake_test: torch.Tensor) -> dict[str, dict]:
    """measure() under each condition."""
    return {
        how: measure(score(condition(real_test, how)), score(condition(fake_test, how)))
        for how in CONDITIONS
    }


class TwoClass(torch.nn.Module):
    """The detector as a two-class classifier (real, generated) for the attacks."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def evasion(net: torch.nn.Module, fakes: torch.Tensor) -> dict[str, float]:
    """Share of generated test images still called generated after PGD-20 at each Linf eps."""
    net.eval()
    model = TwoClass(net)
    y = torch.ones(len(fakes), dtype=torch.long)
    out = {"eps 0": float((gen.scores(net, fakes) >= 0.5).float().mean())}
    for eps in PGD_EPS:
        adv = gen.quantise(pgd(model, fakes, y, eps, steps=20, seed=0))
        out[f"eps {round(eps * 255)}/255"] = float((gen.scores(net, adv) >= 0.5).float().mean())
    return {k: round(v, 4) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--family", action="append", default=[], metavar="NAME=RUN")
    p.add_argument("--train-per-family", type=int, default=1000)
    p.add_argument("--test-per-family", type=int, default=500)
    p.add_argument("--real-train", type=int, default=20000)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--ship-steps", type=int, default=2500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ship", action="store_true", help="export the all-family detector to the zoo")
    p.add_argument("--report", action="store_true", help="print the saved results as markdown")
    args = p.parse_args()
    if args.report:
        print(report(json.loads(RESULTS.read_text())))
        return
    torch.set_num_threads(args.threads)
    refs = dict(ZOO_FAMILIES)
    for item in args.family:
        name, _, ref = item.partition("=")
        refs[name] = ref
    names = [n for n in ORDER if n in refs] + [n for n in refs if n not in ORDER]
    print("families:", ", ".join(f"{n}={refs[n]}" for n in names), flush=True)

    real_train = load_images("fashion-mnist", split="train").as_float()[: args.real_train]
    real_test = load_images("fashion-mnist", split="test").as_float()[: args.test_per_family * 2]
    train = {n: samples(n, refs[n], args.train_per_family, TRAIN_SEED) for n in names}
    test = {n: samples(n, refs[n], args.test_per_family, TEST_SEED) for n in names}

    rows: dict[str, dict] = {}
    for held in names:
        others = torch.cat([train[n] for n in names if n != held])
        t = time.perf_counter()
        net, trained = gen.train_detector(real_train, others, steps=args.steps, seed=0)
        base = gen.frequency_baseline().fit(real_train[: len(others)], others)
        probe = gen.feature_probe().fit(real_train[: len(others)], others)
        pair = gen.MeanOfProbabilities(net, gen.probe_head(probe)).eval()
        rows[held] = {
            "cnn": evaluate(lambda x, net=net: gen.scores(net, x), real_test, test[held]),
            "dct": evaluate(base.scores, real_test, test[held]),
            "probe": evaluate(probe.scores, real_test, test[held]),
            "ensemble": evaluate(partial(gen.scores, pair), real_test, test[held]),
            "train_seconds": round(time.perf_counter() - t, 1),
            "final_loss": round(trained.loss, 4),
        }
        c, d, e, f = (rows[held][k]["clean"] for k in NAMES)
        print(
            f"unseen {held:10s} CNN AP {c['ap']:.3f} acc {c['acc']:.3f} "
            f"(real {c['real_acc']:.3f}, fake {c['fake_acc']:.3f}) | DCT AP {d['ap']:.3f} | "
            f"probe AP {e['ap']:.3f} | both AP {f['ap']:.3f}  [{rows[held]['train_seconds']} s]",
            flush=True,
        )

    everything = torch.cat([train[n] for n in names])
    net, trained = gen.train_detector(real_train, everything, steps=args.ship_steps, seed=0)
    probe = gen.feature_probe().fit(real_train[: len(everything)], everything)
    shipped = gen.MeanOfProbabilities(net, gen.probe_head(probe)).eval()
    detectors = {"cnn": net, "probe": gen.probe_head(probe), "ensemble": shipped}
    seen = {
        n: {k: evaluate(lambda x, m=m: gen.scores(m, x), real_test, test[n])
            for k, m in detectors.items()}
        for n in names
    }  # fmt: skip
    fakes = torch.cat([test[n][:100] for n in names])
    evade = {k: evasion(m, fakes) for k, m in detectors.items()}
    print("seen AP:", {n: {k: v["clean"]["ap"] for k, v in seen[n].items()} for n in names})
    print("evasion (share still detected):", evade)

    out = {
        "bench": "forensics_generated",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {args.threads} thread(s), torch {torch.__version__}",
        "protocol": {
            "real_train": f"fashion-mnist train, first {len(real_train)}",
            "real_test": f"fashion-mnist test, first {len(real_test)}",
            "train_per_family": args.train_per_family,
            "test_per_family": args.test_per_family,
            "seeds": {"train": TRAIN_SEED, "test": TEST_SEED},
            "steps": args.steps,
            "ship_steps": args.ship_steps,
            "augment": f"blur sigma {gen.BLUR_SIGMA}, JPEG {gen.JPEG_QUALITY}, p {gen.AUG_P}",
            "families": {
                n: {"ref": refs[n], "sha256": sha256_file(model_file(refs[n]))} for n in names
            },  # fmt: skip
        },
        "leave_one_out": rows,
        "seen": seen,
        "evasion_pgd20": evade,
    }
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS}")
    if args.ship:
        ship(net, probe, trained, out, names)


def report(out: dict) -> str:
    """The saved results as the markdown tables docs/forensics.md shows."""
    lines = [
        "| unseen family | detector | AP | acc@0.5 | real acc | fake acc | AP JPEG 75 | "
        "acc JPEG 75 | AP resized | acc resized |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fam, row in out["leave_one_out"].items():
        for det in NAMES:
            c, j, r = (row[det][k] for k in CONDITIONS)
            lines.append(
                f"| {fam} | {NAMES[det]} | {c['ap']:.3f} | {c['acc']:.3f} | {c['real_acc']:.3f} "
                f"| {c['fake_acc']:.3f} | {j['ap']:.3f} | {j['acc']:.3f} | {r['ap']:.3f} | "
                f"{r['acc']:.3f} |"
            )
    lines += ["", "| seen family | detector | AP | acc@0.5 | real acc | fake acc | AP JPEG 75 "
              "| AP resized |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for fam, row in out["seen"].items():
        for det in ("cnn", "probe", "ensemble"):
            c, j, r = (row[det][k] for k in CONDITIONS)
            lines.append(
                f"| {fam} | {NAMES[det]} | {c['ap']:.3f} | {c['acc']:.3f} | {c['real_acc']:.3f} "
                f"| {c['fake_acc']:.3f} | {j['ap']:.3f} | {r['ap']:.3f} |"
            )
    ev = out["evasion_pgd20"]
    eps = list(next(iter(ev.values())))
    lines += ["", "| PGD-20 (Linf), share still detected | " + " | ".join(eps) + " |",
              "|---|" + "---|" * len(eps)]  # fmt: skip
    for det, shares in ev.items():
        lines.append(f"| {NAMES[det]} | " + " | ".join(f"{v:.3f}" for v in shares.values()) + " |")
    return "\n".join(lines)


def ship(
    net: gen.DetectorNet,
    probe: gen.LinearDetector,
    trained: gen.TrainReport,
    out: dict,
    names: list[str],
) -> None:
    """Export the all-family detector (the CNN and the probe, averaged) as zoo:fmnist-detector
    with its recipe and results."""
    fams = out["protocol"]["families"]
    idx = sorted(Path("/usr/share/datasets/fashion-mnist").rglob("train-*"))
    files = [{"path": str(f), "bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in idx]
    cmd = " ".join(["python bench/forensics_generated.py", *sys.argv[1:]])
    seen_ap = {f"ap_seen/{n}": out["seen"][n]["ensemble"]["clean"]["ap"] for n in names}
    unseen = out["leave_one_out"]
    unseen_ap = {f"ap_unseen/{n}": unseen[n]["ensemble"]["clean"]["ap"] for n in names}
    zoo.export_tensors(
        gen.ZOO_NAME,
        gen.detector_tensors(net, probe),
        {
            "family": "forensics",
            "preset": "generated-detector",
            "image_shape": [1, gen.SIZE, gen.SIZE],
            "width": net.head.in_features // 4,
            "families": names,
            "combine": "mean of the CNN's and the feature probe's probabilities",
            "pixelsmith_version": pixelsmith.__version__,
        },
        recipe={
            "command": cmd,
            "seed": 0,
            "steps": trained.steps,
            "data": {
                "source": "fashion-mnist",
                "install": "apt-get install -y dataset-fashion-mnist",
                "files": files,
                "generated": {
                    n: {**fams[n], "n": out["protocol"]["train_per_family"], "seed": TRAIN_SEED}
                    for n in names
                },  # fmt: skip
            },
        },
        results={"metrics": {**seen_ap, **unseen_ap}, "command": cmd},
        task="is a 28x28 grey image generated? (Fashion-MNIST domain; CNN with blur+JPEG "
        "augmentation, trained on the samples of " + ", ".join(names) + ")",
    )
    print(f"exported zoo:{gen.ZOO_NAME}")


if __name__ == "__main__":
    main()
