"""Private training measured: what DP-SGD costs per step, and whether the membership attacks
that catch an over-fitted model fail against a private one.

1. Cost: the same classifier step (Papernot et al.'s tanh CNN, batch 2048) and the same
   discriminator step (the dcgan preset, batch 64), plain and private, interleaved in one run.
2. Audit: one member set (the first --members Fashion-MNIST training images) and as many
   non-members (the first test images) against four classifiers trained on the members alone:
   over-fitted (SmallCNN, no regularisation, many epochs), standard (SmallCNN, dropout and weight
   decay, few epochs) and two private ones (DP-SGD at --epsilon: the tanh CNN, and ScatterNet +
   linear); then the shipped models, trained on all 60,000 images: zoo:fmnist-robust (standard)
   and zoo:fmnist-dp (private).
   The attacks are the loss threshold (Yeom et al. 2018) and, on the four trained here, LiRA
   (Carlini et al. 2022) with --shadows models trained by the same recipe on random halves of
   the members and non-members; each with its AUC and its true-positive rate at 1% false
   positives (Carlini et al.'s measure); chance is 0.5 and 0.01.
3. Generators: membership of the first --generators MNIST training digits (against as many test
   digits) in an over-fitted and a standard conditional GAN trained on them, and in a DP-MERF
   generator at epsilon 10: the distance to the closest of 10,000 samples, and LOGAN on a GAN.

    python bench/privacy.py [--members 1000] [--epsilon 3] [--shadows 8] [--figure FILE]
    python bench/privacy.py --only-generators        # part 3 alone, keeping the other results
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelsmith.data.sources import load_images  # noqa: E402
from pixelsmith.metrics import membership as mi  # noqa: E402
from pixelsmith.metrics.cards import privacy_line  # noqa: E402
from pixelsmith.models.base import Batch, StepContext  # noqa: E402
from pixelsmith.models.classifier import Classifier, ClassifierConfig  # noqa: E402
from pixelsmith.train import privacy  # noqa: E402
from pixelsmith.train.batches import Batches, PoissonBatches  # noqa: E402
from pixelsmith.train.config import build_config  # noqa: E402
from pixelsmith.train.loop import Trainer  # noqa: E402
from pixelsmith.utils.rng import BatchRandom  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "privacy.json"


def _ctx(step: int, dp: privacy.PrivateTraining | None = None, batch: int = 0) -> StepContext:
    extra = {"private_batch": batch, "freeze": dp.freeze} if dp else {}
    return StepContext(BatchRandom(step), step, lambda: None, lambda net: None, **extra)


def step_cost(rounds: int) -> dict[str, dict[str, float]]:
    """Median seconds per step, plain and private, of a classifier and a GAN discriminator."""
    out = {}
    x = torch.rand(2048, 1, 28, 28)
    y = torch.randint(0, 10, (2048,))
    fams = {}
    for kind in ("plain", "private"):
        torch.manual_seed(0)
        cfg = ClassifierConfig(arch="tanh", optimizer="sgd", lr=4.0, dropout=0.0)
        fam = Classifier(cfg, (1, 28, 28), 10)
        fam.configure_optimizers()
        if kind == "private":
            pc = privacy.PrivacyConfig(noise_multiplier=1.0, max_grad_norm=0.1, seeded_noise=True)
            privacy.PrivateTraining(pc, fam, 60000, 2048, None, 0)
        fams[kind] = fam
    out["classifier (tanh CNN, batch 2048)"] = _time_pair(
        {k: (lambda f=f, s=0: f.train_step(Batch(x, y), _ctx(s))) for k, f in fams.items()},
        rounds,
    )
    trainers = {}
    for kind in ("plain", "private"):
        extra = ["privacy.noise_multiplier=1.0"] if kind == "private" else []
        base = ["train.steps=1", "train.batch=64", "train.eval_at_end=false"]
        cfg = build_config("dcgan", overrides=[*base, *extra])
        trainers[kind] = Trainer(cfg, Path("/tmp/pixelsmith-bench-privacy"), progress=False)
    out["dcgan step (D private, batch 64)"] = _time_pair(
        {k: t.step for k, t in trainers.items()}, rounds
    )
    for t in trainers.values():
        shutil.rmtree(t.run_dir, ignore_errors=True)
    return out


def _time_pair(steps: dict, rounds: int) -> dict[str, float]:
    for f in steps.values():  # warm-up
        f()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, f in steps.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        **{f"{k}_s": round(v, 4) for k, v in med.items()},
        "ratio": med["private"] / med["plain"],
    }


def _train(
    cfg: ClassifierConfig, x, y, epochs: float, batch: int, pc=None, seed: int = 0
) -> Classifier:
    torch.manual_seed(seed)
    fam = Classifier(cfg, tuple(x.shape[1:]), 10)
    fam.configure_optimizers()
    images = (x * 255).round().byte()
    if pc is not None:
        steps = privacy.step_budget(None, epochs, batch / len(x))
        dp = privacy.PrivateTraining(pc, fam, len(x), batch, steps, seed=seed)
        batches: Batches | PoissonBatches = PoissonBatches(images, y, batch, seed=seed)
    else:
        dp, steps = None, int(epochs * (len(x) // batch))
        batches = Batches(images, y, batch, seed=seed)
    for step in range(steps):
        bx, by = batches.next()
        if len(bx):
            fam.train_step(Batch(bx, by), _ctx(step))
        elif dp is not None:
            dp.empty_step()
    fam.privacy = dp.record() if dp else None
    return fam


def _recipes(members: int, epsilon: float) -> list[tuple[str, str, dict]]:
    """(name, description, _train's settings) of the classifiers trained on the member set."""
    sgd = {"optimizer": "sgd", "dropout": 0.0, "weight_decay": 0.0}
    # seeded noise: the bench repeats (its record says what that costs a real release)
    pc = privacy.PrivacyConfig(epsilon=epsilon, delta=1e-5, max_grad_norm=0.1, seeded_noise=True)
    return [
        ("over-fitted", "SmallCNN, no dropout or decay, 200 epochs",
         {"cfg": ClassifierConfig(dropout=0.0, weight_decay=0.0), "epochs": 200, "batch": 100}),
        ("standard", "SmallCNN, dropout 0.3, weight decay, 10 epochs",
         {"cfg": ClassifierConfig(), "epochs": 10, "batch": 100}),
        ("private CNN", "tanh CNN, DP-SGD, 40 epochs",
         {"cfg": ClassifierConfig(arch="tanh", lr=4.0, **sgd), "epochs": 40,
          "batch": members // 4, "pc": pc}),
        ("private scatter", "ScatterNet + linear, DP-SGD, 40 epochs",
         {"cfg": ClassifierConfig(arch="scatter", lr=4.0, **sgd), "epochs": 40,
          "batch": members // 4, "pc": pc}),
    ]  # fmt: skip


def _row(name: str, net, members, non_members, test, note: str, record=None) -> dict:
    net = copy.deepcopy(net).eval()
    scores = (mi.loss_scores(net, *members), mi.loss_scores(net, *non_members))
    rep = mi.membership_report(*scores)
    with torch.no_grad():
        acc = float((net(test[0]).argmax(1) == test[1]).float().mean())
    eps = record["epsilon"] if record else None
    return {
        "model": name,
        "training": note,
        "epsilon": eps,
        "test_accuracy": round(acc, 4),
        "auc": rep["auc"],
        "tpr_at_1pct_fpr": rep["tpr_at_1pct_fpr"],
        "roc": [t.tolist() for t in mi.roc(*scores)],
    }


def lira(net, settings: dict, pool: tuple, members: int, shadows: int) -> dict:
    """Online LiRA against `net` (trained on the pool's first `members` images): `shadows`
    models trained by the same recipe, each image inside exactly half of them."""
    x, y = pool
    n = len(x)
    g = torch.Generator().manual_seed(1)
    inside = torch.zeros(shadows, n, dtype=torch.bool)
    for i in range(n):  # each image in a random half of the shadows
        inside[torch.randperm(shadows, generator=g)[: shadows // 2], i] = True
    stats = []
    for k in range(shadows):
        idx = torch.nonzero(inside[k]).flatten()
        shadow = _train(x=x[idx], y=y[idx], seed=100 + k, **settings)
        stats.append(mi.logit_confidence(shadow.networks["net"], x, y))
    scores = mi.lira_scores(mi.logit_confidence(net, x, y), torch.stack(stats), inside)
    ins, outs = scores[:members], scores[members:]
    rep = mi.membership_report(ins, outs)
    return {"lira_auc": rep["auc"], "lira_tpr_at_1pct_fpr": rep["tpr_at_1pct_fpr"],
            "lira_roc": [t.tolist() for t in mi.roc(ins, outs)]}  # fmt: skip


def audit(members: int, epsilon: float, shadows: int) -> list[dict]:
    """The loss attack (and LiRA, with shadows) against classifiers trained on the member set,
    then the loss attack against the shipped ones."""
    train = load_images("fashion-mnist", "train", limit=members)
    test = load_images("fashion-mnist", "test")
    m = (train.as_float(), train.labels)
    nm = (test.as_float()[:members], test.labels[:members])
    held = (test.as_float()[members:], test.labels[members:])
    pool = (torch.cat([m[0], nm[0]]), torch.cat([m[1], nm[1]]))
    rows = []
    for name, note, settings in _recipes(members, epsilon):
        fam = _train(x=m[0], y=m[1], **settings)
        rows.append(_row(name, fam.networks["net"], m, nm, held, note, fam.privacy))
        if shadows:
            rows[-1] |= lira(fam.networks["net"], settings, pool, members, shadows)
            rows[-1]["shadows"] = shadows
            print(f"  {name}: LiRA AUC {rows[-1]['lira_auc']:.4f}", file=sys.stderr)
    # The shipped models were trained on all 60,000 training images: any of them is a member.
    from pixelsmith.generate import load_model

    for name, note in (("fmnist-robust", "zoo: SmallCNN, PGD training, 60k images"),
                       ("fmnist-dp", "zoo: ScatterNet + linear, DP-SGD, 60k images")):  # fmt: skip
        try:
            model = load_model(f"zoo:{name}")
        except Exception as e:  # noqa: BLE001 - a missing zoo file leaves its row out
            print(f"zoo:{name} left out ({e})", file=sys.stderr)
            continue
        rows.append(_row(f"zoo:{name}", model.classifier(), m, nm, held, note,
                         model.manifest.get("privacy")))  # fmt: skip
    return rows


def generator_utility(run: str, samples: int = 10000, epochs: int = 10) -> dict:
    """A conditional generator's usefulness: a SmallCNN trained only on `samples` of its labelled
    samples (classes in turn), tested on the real test split; and FID in the source's classifier
    features. The same classifier trained on the real training images is the ceiling."""
    from pixelsmith.generate import load_model
    from pixelsmith.metrics.evaluate import evaluate_model

    gen = load_model(run)
    if not gen.classes:
        raise SystemExit(f"{run} is not conditional: its samples carry no labels to train on")
    source = gen.manifest["data"]["name"]
    labels = torch.arange(samples) % gen.classes
    fake = torch.cat([gen.sample(1000, seed=i, labels=labels[i : i + 1000].tolist())
                      for i in range(0, samples, 1000)])  # fmt: skip
    test = load_images(source, "test")
    real = load_images(source, "train")
    out = {"run": run, "source": source, "samples": samples, "privacy": gen.manifest.get("privacy")}
    for name, (x, y) in (("synthetic", (fake, labels)), ("real", (real.as_float(), real.labels))):
        fam = _train(ClassifierConfig(), x, y, epochs=epochs, batch=100)
        net = fam.networks["net"].eval()
        with torch.no_grad():
            acc = (net(test.as_float()).argmax(1) == test.labels).float().mean()
        out[f"{name}_trained_accuracy"] = round(float(acc), 4)
    (fid,) = evaluate_model(gen, "fid", n=samples)  # the source's shipped classifier features
    out["fid"] = round(fid.value, 3)
    out["fid_card"] = fid.card.describe()
    return out


# Generators trained on the same member digits: (name, note, preset, settings).
GENERATORS = (
    ("over-fitted", "cgan, 4,000 steps of 16 (128 epochs)", "cgan", ["train.steps=4000"]),
    ("standard", "cgan, 500 steps of 16 (16 epochs)", "cgan", ["train.steps=500"]),
    ("private", "DP-MERF, epsilon 10, 1,000 steps", "merf-dp", ["train.steps=1000"]),
)


def generator_audit(members: int) -> list[dict]:
    """The sample-distance attack (and LOGAN's white box on a GAN) against generators trained on
    the first `members` MNIST training digits, with as many test digits as non-members."""
    import tempfile

    from pixelsmith.jobs.privacy import audit as run_audit
    from pixelsmith.train.loop import train

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, note, preset, settings in GENERATORS:
            over = ["data.source=mnist", f"data.limit={members}", "train.eval_at_end=false",
                    "train.seed=0", *settings]  # fmt: skip
            run = train(build_config(preset, overrides=over), Path(tmp) / name, progress=False)
            r = run_audit(str(run), "mnist:train", "mnist:test", n=members)
            row = {"model": name, "training": note, "auc": r["auc"],
                   "tpr_at_1pct_fpr": r["tpr_at_1pct_fpr"],
                   "epsilon": r["card"].get("privacy", "-")}  # fmt: skip
            if "discriminator" in r:
                row["logan_auc"] = r["discriminator"]["auc"]
                row["logan_tpr_at_1pct_fpr"] = r["discriminator"]["tpr_at_1pct_fpr"]
            rows.append(row)
            print(f"  {name}: distance AUC {row['auc']:.4f}", file=sys.stderr)
    return rows


def figure(rows: list[dict], path: Path) -> None:
    """Each attack's ROC per model on log-log axes (Carlini et al.'s view: the low-FPR end)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("roc", "auc", "Loss-threshold attack")]
    if any("lira_roc" in r for r in rows):
        panels.append(("lira_roc", "lira_auc", f"LiRA ({rows[0].get('shadows', '')} shadows)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (key, auc, title) in zip(axes[0], panels, strict=True):
        for r in rows:
            if key not in r:
                continue
            fpr, tpr = r[key]
            eps = f", eps {r['epsilon']:.2g}" if isinstance(r["epsilon"], float) else ""
            ax.loglog(fpr, tpr, label=f"{r['model']}{eps}: AUC {r[auc]:.3f}")
        ax.loglog([1e-3, 1], [1e-3, 1], "k:", lw=0.8, label="chance")
        ax.set(xlim=(1e-3, 1), ylim=(1e-3, 1), xlabel="false-positive rate",
               ylabel="true-positive rate", title=title)  # fmt: skip
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _print_generators(members: int) -> list[dict]:
    rows = generator_audit(members)
    print(
        f"\nmembership of generators, {members} MNIST training digits vs as many test digits: "
        "distance to the closest of 10,000 samples, and LOGAN (the discriminator's score):"
    )
    print(f"  {'model':12s} {'AUC':>7s} {'TPR@1%':>7s} {'LOGAN':>7s} {'TPR@1%':>7s}  training")
    for r in rows:
        lo = (f"{r['logan_auc']:7.4f} {r['logan_tpr_at_1pct_fpr']:7.4f}" if "logan_auc" in r
              else f"{'-':>7s} {'-':>7s}")  # fmt: skip
        print(f"  {r['model']:12s} {r['auc']:7.4f} {r['tpr_at_1pct_fpr']:7.4f} {lo}  "
              f"{r['training']}")  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--epsilon", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--shadows", type=int, default=8, help="LiRA's shadow models (0: no LiRA)")
    p.add_argument("--figure", type=Path, default=None)
    p.add_argument("--generator", help="also score a private conditional generator's run")
    p.add_argument(
        "--generators",
        type=int,
        default=500,
        metavar="N",
        help="member digits of the generator audit (0: no generator audit)",
    )
    p.add_argument("--only-generators", action="store_true",
                   help="run the generator audit alone, keeping the other results")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.only_generators:
        record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        record["generators"] = _print_generators(args.generators)
        record["generators_args"] = vars(args)
        RESULTS.write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"results: {RESULTS}")
        return
    cost = step_cost(args.rounds)
    print("cost of a step, medians of", args.rounds, "interleaved rounds:")
    for what, r in cost.items():
        print(f"  {what}: plain {r['plain_s'] * 1000:.0f} ms, private {r['private_s'] * 1000:.0f}"
              f" ms, ratio {r['ratio']:.2f}")  # fmt: skip
    rows = audit(args.members, args.epsilon, args.shadows)
    print(f"\nloss-threshold attack, {args.members} members (Fashion-MNIST train) vs as many "
          "non-members (test); accuracy on the other test images:")  # fmt: skip
    print(f"  {'model':16s} {'epsilon':>8s} {'acc':>7s} {'AUC':>7s} {'TPR@1%':>7s} "
          f"{'LiRA AUC':>9s} {'TPR@1%':>7s}  training")  # fmt: skip
    for r in rows:
        eps = f"{r['epsilon']:.2f}" if isinstance(r["epsilon"], float) else "-"
        lr_auc = f"{r['lira_auc']:9.4f}" if "lira_auc" in r else f"{'-':>9s}"
        lr_tpr = f"{r['lira_tpr_at_1pct_fpr']:7.4f}" if "lira_auc" in r else f"{'-':>7s}"
        print(f"  {r['model']:16s} {eps:>8s} {r['test_accuracy']:7.4f} {r['auc']:7.4f} "
              f"{r['tpr_at_1pct_fpr']:7.4f} {lr_auc} {lr_tpr}  {r['training']}")  # fmt: skip
    gen = None
    if args.generator:
        gen = generator_utility(args.generator)
        print(f"\n{args.generator}: a SmallCNN trained on {gen['samples']} of its samples scores "
              f"{gen['synthetic_trained_accuracy']:.4f} on the real {gen['source']} test split "
              f"(trained on the real training images: {gen['real_trained_accuracy']:.4f}); FID "
              f"{gen['fid']:.2f} ({gen['fid_card']})")  # fmt: skip
        if gen["privacy"]:
            print(f"  {privacy_line(gen['privacy'])}")
    gens = _print_generators(args.generators) if args.generators else None
    if args.figure:
        figure(rows, args.figure)
        print(f"figure: {args.figure}")
    RESULTS.parent.mkdir(exist_ok=True)
    kept = [{k: v for k, v in r.items() if not k.endswith("roc")} for r in rows]
    record = {"cost": cost, "audit": kept, "generator": gen, "generators": gens,
              "args": vars(args)}  # fmt: skip
    RESULTS.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
