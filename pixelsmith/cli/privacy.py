"""`pixelsmith privacy audit`: membership inference against a model."""

from __future__ import annotations

import argparse
import json


def _audit(args: argparse.Namespace) -> int:
    from pixelsmith.jobs.privacy import audit

    r = audit(args.model, args.members, args.non_members, n=args.n, samples=args.samples,
              seed=args.seed)  # fmt: skip
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    c = r["card"]
    print(f"{c['model']}: membership AUC {r['auc']:.3f}, TPR {r['tpr_at_1pct_fpr']:.3f} at 1% FPR "
          f"and {r['tpr_at_0.1pct_fpr']:.3f} at 0.1%, advantage {r['advantage']:.3f} (chance: AUC "
          f"0.5, TPR = FPR)")  # fmt: skip
    print(f"  attack: {c['attack']}; members {c['members']}; non-members {c['non_members']}")
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `privacy audit`."""
    p = verbs.add_parser("privacy", help="privacy audits (membership inference)")
    pv = p.add_subparsers(dest="privacy_verb", metavar="ACTION", required=True)
    a = pv.add_parser(
        "audit",
        help="can an attacker tell the images a model trained on from others?",
        description="Membership inference: the loss-threshold attack on a classifier, the "
        "distance to the closest generated sample on a generator. Reports ROC AUC, the true-"
        "positive rate at 1%% and 0.1%% false positives, and the best advantage.",
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
    a.add_argument("--json", action="store_true", help="print the report and card as JSON")
    a.set_defaults(func=_audit)
