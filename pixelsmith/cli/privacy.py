"""`pixelsmith privacy audit`: membership inference against a model."""

from __future__ import annotations

import argparse
import json


def _audit(args: argparse.Namespace) -> int:
    from pixelsmith.jobs.privacy import audit

    shadows = None
    if args.lira:
        from functools import partial

        from pixelsmith.train.shadows import stderr, train_shadows

        shadows = partial(train_shadows, log=None if args.json else stderr)
    r = audit(args.model, args.members, args.non_members, n=args.n, samples=args.samples,
              seed=args.seed, lira=args.lira, train_shadows=shadows)  # fmt: skip
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    c = r["card"]
    print(f"{c['model']}: membership AUC {r['auc']:.3f}, TPR {r['tpr_at_1pct_fpr']:.3f} at 1% FPR "
          f"and {r['tpr_at_0.1pct_fpr']:.3f} at 0.1%, advantage {r['advantage']:.3f} (chance: AUC "
          f"0.5, TPR = FPR)")  # fmt: skip
    print(f"  attack: {c['attack']}; members {c['members']}; non-members {c['non_members']}")
    if "discriminator" in r:
        d = r["discriminator"]
        print(f"  {d['attack']}: AUC {d['auc']:.3f}, TPR {d['tpr_at_1pct_fpr']:.3f} at 1% FPR")
    if "lira" in r:
        d = r["lira"]
        print(f"  {d['attack']}: AUC {d['auc']:.3f}, TPR {d['tpr_at_1pct_fpr']:.3f} at 1% FPR")
    if "privacy" in c:
        print(f"  trained privately: {c['privacy']}")
    return 0


def _budget(args: argparse.Namespace) -> int:
    from pixelsmith.errors import UserError
    from pixelsmith.train import privacy

    if (args.epsilon is None) == (args.noise is None):
        raise UserError("give --epsilon (to get the noise) or --noise (to get the epsilon)")
    if not 0 < args.batch <= args.n:
        raise UserError(f"--batch must lie in 1..--n ({args.n}), got {args.batch}")
    rate = args.batch / args.n
    steps = privacy.step_budget(args.steps, args.epochs, rate)
    if steps is None:
        raise UserError("give the budget as --steps or --epochs")
    noise = args.noise
    if args.epsilon is not None:
        noise = privacy.noise_for(args.epsilon, args.delta, rate, steps, args.accountant)
    eps = privacy.epsilon_of(noise, args.delta, rate, steps, args.accountant)
    print(f"noise multiplier {noise:.4g}: epsilon {eps:.4g} at delta {args.delta:g} after {steps} "
          f"steps at sample rate {rate:.4g} ({args.accountant} accountant, Opacus)")  # fmt: skip
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `privacy audit` and `privacy budget`."""
    p = verbs.add_parser("privacy", help="privacy audits (membership inference) and DP-SGD budgets")
    pv = p.add_subparsers(dest="privacy_verb", metavar="ACTION", required=True)
    a = pv.add_parser(
        "audit",
        help="can an attacker tell the images a model trained on from others?",
        description="Membership inference: the loss-threshold attack (and with --lira, LiRA) on "
        "a classifier, the distance to the closest generated sample on a generator. Reports ROC "
        "AUC, the true-positive rate at 1%% and 0.1%% false positives, and the best advantage.",
    )
    a.add_argument("model", metavar="MODEL", help="a classifier or generator: run, checkpoint, "
                   "zoo:NAME, fmnist or mnist")  # fmt: skip
    a.add_argument("--members", required=True, metavar="SOURCE[:SPLIT]",
                   help="images the model trained on, e.g. fashion-mnist:train")  # fmt: skip
    a.add_argument("--non-members", required=True, metavar="SOURCE[:SPLIT]",
                   help="images it never saw, e.g. fashion-mnist:test")  # fmt: skip
    a.add_argument("--n", type=int, default=2000, help="images of each (default 2000)")
    a.add_argument("--samples", type=int, default=10000,
                   help="a generator's samples to search (default 10000)")  # fmt: skip
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--lira", type=int, default=0, metavar="SHADOWS",
                   help="also LiRA on a classifier: train this many shadow models (even, e.g. "
                   "4) by its recipe on halves of the members and non-members; each costs about "
                   "one training run on 2n images")  # fmt: skip
    a.add_argument("--json", action="store_true", help="print the report and card as JSON")
    a.set_defaults(func=_audit)
    b = pv.add_parser(
        "budget",
        help="the noise that DP-SGD needs for an epsilon, or the epsilon a noise reaches",
        description="Opacus's accountant for Poisson-sampled DP-SGD: --epsilon gives the noise "
        "multiplier (privacy.noise_multiplier) that spends it over the budget, --noise the "
        "epsilon that it reaches.",
    )
    b.add_argument("--epsilon", type=float, help="the budget to spend")
    b.add_argument("--noise", type=float, help="the noise multiplier")
    b.add_argument("--delta", type=float, default=1e-5, help="default 1e-5")
    b.add_argument("--n", type=int, default=60000, help="training images (default 60000)")
    b.add_argument("--batch", type=int, default=2048, help="expected batch (default 2048)")
    b.add_argument("--epochs", type=float, help="epochs of expected batches")
    b.add_argument("--steps", type=int, help="steps")
    b.add_argument("--accountant", default="rdp", choices=["rdp", "prv", "gdp"])
    b.set_defaults(func=_budget)
