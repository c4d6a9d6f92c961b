"""`pixelsmith VERB ...`: thin wrappers that parse arguments and call the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pixelsmith.cli.keyfile import add_encrypt_option, use_encrypt_option
from pixelsmith.errors import UserError, cli_warnings
from pixelsmith.version import __version__


def _train(args: argparse.Namespace) -> int:
    import yaml

    if args.list:
        return _list_presets()
    if args.model == "feature-net":
        return _train_feature_net(args)
    if args.preset:
        raise UserError(
            "--preset is gone: every preset is a model name now (e.g. pixelsmith train vae-30min); "
            "`pixelsmith train --list` shows them"
        )

    from pixelsmith import config as cfglib
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import run_config, train

    overrides = list(args.set or [])
    for flag, key in (
        ("data", "data.source"),
        ("steps", "train.steps"),
        ("epochs", "train.epochs"),
        ("minutes", "train.minutes"),
        ("seed", "train.seed"),
        ("init", "train.init"),
        ("freeze_d", "train.freeze_d"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    budget = [f for f in ("steps", "epochs", "minutes") if getattr(args, f) is not None]
    if args.init and args.resume:
        raise UserError(
            "--init starts a new run from other weights and --resume continues a run from its "
            "own; give one of them"
        )
    if args.model and args.model.startswith("zoo:") and not args.resume:
        from pixelsmith.cli.zoo import remake

        return remake(args, overrides)
    if args.resume:
        saved = run_config(args.resume)
        if args.model and args.model not in (saved.preset, saved.family):
            raise UserError(
                f"run {args.resume} holds a {saved.family} model trained as {saved.preset}, "
                f"not {args.model}; resume it without naming a model"
            )
        base = cfglib.to_dict(saved)
        if budget:  # a new budget replaces the saved one instead of combining with it
            for f in ("steps", "epochs", "minutes"):
                base["train"][f] = None
        cfg = build_config(saved.preset, args.config, overrides, base=base)
    else:
        if not args.model:
            raise UserError("name a model to train (e.g. pixelsmith train dcgan), or --resume RUN")
        cfg = build_config(args.model, args.config, overrides)
    if args.dry_run:
        print(yaml.safe_dump(cfglib.to_dict(cfg), sort_keys=False), end="")
        return 0
    train(cfg, out_root=args.out, resume=args.resume, progress=not args.quiet)
    return 0


def _list_presets() -> int:
    from pixelsmith.models import families

    rows = [("model", "family", "budget", "what it is for")]
    for fam in families().values():
        for name, p in fam.presets.items():
            rows.append((name, fam.name, f"{p.minutes:g} min", p.about))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], width, strict=True)) + "  " + r[3])
    return 0


def _train_feature_net(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pixelsmith.metrics.classifier import (
        RECIPES,
        load_classifier,
        save_classifier,
        train_classifier,
    )
    from pixelsmith.metrics.features import WEIGHTS_DIR
    from pixelsmith.utils.checkpoint_file import payload_hash

    data = args.data or "fashion-mnist"
    if data not in RECIPES:
        raise UserError(f"no classifier recipe for {data!r}; choose from {', '.join(RECIPES)}")
    recipe = RECIPES[data]
    net, record = train_classifier(
        data,
        epochs=int(args.epochs) if args.epochs else None,
        log=lambda m: print(m, file=sys.stderr),
    )
    out = Path(args.out) / "classifiers" / f"{recipe.name}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_classifier(net, record, out)
    # the file holds the run's wall-clock time too: compare the weights, not the files
    mine = payload_hash(net.state_dict())
    shipped = WEIGHTS_DIR / out.name
    theirs = payload_hash(load_classifier(shipped)[0].state_dict()) if shipped.is_file() else ""
    same = "identical to" if mine == theirs else "differ from"
    print(
        f"wrote {out}\n  test accuracy {record['test_accuracy']:.4f} on {record['test_n']} images"
        f"\n  weights sha256 {mine} ({same} the shipped {shipped})"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from pixelsmith.generate import load_model, parse_options
    from pixelsmith.metrics.evaluate import evaluate_model, format_table, stderr_log, store_scores

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    scores = evaluate_model(
        model,
        metrics=args.metrics,
        n=args.n,
        features=args.features,
        reference=args.reference,
        seed=args.seed,
        log=None if args.quiet else stderr_log,
        reference_n=args.reference_n,
        options=parse_options(model, args.set or []),
    )
    if args.json:
        print(json.dumps([s.to_dict() for s in scores], indent=2))
    else:
        print(format_table(scores))
    if not args.no_store:
        run_dir = model.checkpoint.parent.parent
        if (run_dir / "manifest.json").exists():
            where = store_scores(run_dir, scores, step=model.manifest.get("step"))
            print(f"stored in {where}", file=sys.stderr)
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from pixelsmith.metrics.pairs import compare_files

    rows = compare_files(args.a, args.b, args.metric, y_channel=args.y_channel)
    if len(rows) == 1:
        print(f"{args.metric} {rows[0][1]:.6f}")
        return 0
    for name, v in rows:
        print(f"{name}\t{v:.6f}")
    finite = [v for _, v in rows if v != float("inf")]
    mean = sum(finite) / len(finite) if finite else float("inf")
    note = (
        f" ({len(rows) - len(finite)} identical pairs left out)" if len(finite) < len(rows) else ""
    )
    print(f"mean {args.metric} {mean:.6f} over {len(finite)} pairs{note}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from pixelsmith.errors import warn
    from pixelsmith.generate import load_model, parse_options, sample_to, style_mix_to
    from pixelsmith.jobs.stamp import open_stamp, sample_files, signer_option, unmarked

    grid = None
    if args.style_mix is not None:
        rows, _, cols = args.style_mix.partition(",")
        if not (rows.strip().isdigit() and cols.strip().isdigit()):
            raise UserError(f"--style-mix takes ROWS,COLS counts, e.g. 3,5; got {args.style_mix!r}")
        grid = int(rows), int(cols)
    signer = signer_option(args.credentials, args.cert, args.key)
    stamp = open_stamp(args.watermark, args.message, signer)
    model = load_model(args.model, device=args.device)
    items = list(args.set or [])
    if args.truncation is not None:
        items.append(f"truncation={args.truncation}")
    opts = parse_options(model, items, args.labels)
    if stamp.active:
        paths, reports = sample_files(model, args.n, args.seed, args.out, stamp, options=opts,
                                      name=args.model, style_mix=grid)  # fmt: skip
        if note := unmarked(reports):
            warn(note)
    elif grid is not None:
        paths = [style_mix_to(model, *grid, args.seed, args.out, options=opts)]
    else:
        paths = sample_to(model, args.n, args.seed, args.out, options=opts)
    where = paths[0] if len(paths) == 1 else f"{len(paths)} images in {args.out}"
    print(f"wrote {where}")
    return 0


def _data_show(args: argparse.Namespace) -> int:
    from pixelsmith.data.preview import preview

    path = preview(
        args.name,
        args.out,
        n=args.n,
        split=args.split,
        augment=args.augment,
        diffaugment=args.diffaugment,
        seed=args.seed,
        overrides=args.set or [],
    )
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pixelsmith",
        description="Train, sample, translate and measure generative image models, offline.",
    )
    p.add_argument("--version", action="version", version=f"pixelsmith {__version__}")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")

    t = verbs.add_parser(
        "train", help="train a model (a GAN, vae, pixelcnn, diffusion, cyclegan, stylegan)"
    )
    t.add_argument(
        "model",
        nargs="?",
        help="a preset (--list shows them all): dcgan, hinge-gan, wgan-gp, cgan, sc-gan, "
        "sc-gan-2h; vae, pixelcnn, diffusion, cyclegan, stylegan, each of these also as "
        "NAME-30min (made for 30 minutes on a CPU); classifier (and -pgd, -trades, -fast: "
        "robust training; -dp: private training); feature-net (the metrics' feature network, "
        "by its recorded recipe); or zoo:NAME (re-make a zoo model by its recipe and say "
        "whether it matches)",
    )
    t.add_argument("--list", action="store_true", help="list the presets and exit")
    t.add_argument("--data", help="fashion-mnist, mnist, shapes, or a folder of images")
    budget = t.add_argument_group(
        "budget (the first to run out ends training; default: the preset's, see --list)"
    )
    budget.add_argument("--steps", type=int)
    budget.add_argument("--epochs", type=float)
    budget.add_argument("--minutes", type=float)
    t.add_argument(
        "--out", default="runs", help="folder that holds numbered run folders (default runs)"
    )
    t.add_argument("--config", help="YAML file of settings")
    t.add_argument("--preset", help=argparse.SUPPRESS)  # gone: presets are model names now
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a setting, e.g. train.batch=128 or sample.steps=25 (--dry-run lists all)",
    )
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument(
        "--resume", metavar="RUN", help="continue a run folder from its newest checkpoint"
    )
    add_encrypt_option(
        t,
        "write the run encrypted (AES-256-GCM: checkpoints, grids, stats, plots, report) with "
        "this key, and read encrypted data and runs with it",
    )
    t.add_argument("--seed", type=int)
    t.add_argument(
        "--init",
        metavar="RUN|CHECKPOINT|zoo:NAME",
        help="start from these weights (tensors matched by name and shape; the rest fresh)",
    )
    t.add_argument(
        "--freeze-d",
        type=int,
        metavar="N",
        help="FreezeD: keep the discriminator's first N layers fixed (gan, stylegan)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress line")
    t.set_defaults(func=_train)

    s = verbs.add_parser("sample", help="sample images from a trained model")
    s.add_argument("model", metavar="RUN|CHECKPOINT")
    s.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "-o", "--out", required=True, help="OUT.png for a grid, or a folder for one PNG each"
    )
    s.add_argument("--device", default="cpu")
    s.add_argument(
        "--set",
        action="append",
        metavar="sample.KEY=VALUE",
        help="a sampling option of the model, e.g. sample.steps=25 (diffusion), "
        "sample.truncation=0.7 (stylegan); a wrong key lists the model's options",
    )
    s.add_argument(
        "--labels",
        metavar="C[,C...]",
        help="classes of the images for a conditional model, cycled to -n (e.g. 3,3,7; one "
        "value gives all images that class); default 0, 1, 2, ... in columns",
    )
    s.add_argument(
        "--truncation",
        type=float,
        metavar="PSI",
        help="the same as --set sample.truncation=PSI: pull each latent toward the average one "
        "(1 = off, 0 = the average image; e.g. 0.7); for style-based models such as stylegan",
    )
    s.add_argument(
        "--style-mix",
        metavar="ROWS,COLS",
        help="write a style-mixing grid to OUT.png instead: ROWS row sources (seeds SEED, "
        "SEED+1, ...) give the coarse styles, COLS column sources (the next seeds) the fine ones; "
        "the first row and column show the sources; -n is ignored; for style-based models such "
        "as stylegan",
    )
    from pixelsmith.cli.edit import add_stamp_options

    add_stamp_options(
        s,
        marked="each image (or the grid)",
        signed="each file (created by the model, its sha256, the options, the mark)",
        formats="",
    )
    add_encrypt_option(s)
    s.set_defaults(func=_sample)

    e = verbs.add_parser(
        "eval",
        help="score a model: FID, KID, IS, precision/recall of its samples, or its own metric",
    )
    e.add_argument("model", metavar="RUN|CHECKPOINT")
    e.add_argument(
        "--metrics",
        default="auto",
        help="comma list of fid,kid,is,pr, or a family's own metric on the real "
        "reference images: nll (vae, pixelcnn), translation (cyclegan), restoration, accuracy "
        "(classifier), class_agreement (conditional models); default auto: fid,kid "
        "for a model that draws images, else the family's own",
    )
    e.add_argument("--n", type=int, default=10_000, help="samples to draw (default 10000)")
    e.add_argument(
        "--features",
        default="auto",
        help="fmnist, mnist, inception or a TorchScript file (default: the run's data set's)",
    )
    e.add_argument(
        "--reference", metavar="SOURCE[:SPLIT]", help="reference images (default: the run's, test)"
    )
    e.add_argument(
        "--reference-n", type=int, help="use the first N reference images (default: all)"
    )
    e.add_argument("--seed", type=int, default=0)
    e.add_argument(
        "--set",
        action="append",
        metavar="sample.KEY=VALUE",
        help="a sampling option for the samples scored, e.g. sample.steps=25; the cards record it",
    )
    e.add_argument("--device", default="cpu")
    e.add_argument("--threads", type=int, help="CPU threads (default: torch's, all cores)")
    e.add_argument("--json", action="store_true", help="print scores and cards as JSON")
    e.add_argument("--no-store", action="store_true", help="do not add scores to the manifest")
    e.add_argument("--quiet", action="store_true", help="no progress lines")
    add_encrypt_option(e)
    e.set_defaults(func=_eval)

    m = verbs.add_parser("metrics", help="PSNR, SSIM or MS-SSIM of two images or two folders")
    m.add_argument("metric", choices=["psnr", "ssim", "ms-ssim"])
    m.add_argument("a", metavar="A", help="image or folder")
    m.add_argument("b", metavar="B", help="image or folder (names matched to A's)")
    m.add_argument("--y-channel", action="store_true", help="PSNR on BT.601 luma (as SR papers)")
    m.set_defaults(func=_metrics)

    d = verbs.add_parser("data", help="look at data sets")
    dv = d.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    show = dv.add_parser("show", help="write a preview grid of a data set")
    show.add_argument("name", help="fashion-mnist, mnist, shapes, or a folder of images")
    show.add_argument("-o", "--out", required=True, help="grid PNG to write")
    show.add_argument("-n", type=int, default=32, help="images to show (default 32)")
    show.add_argument("--split", default="train")
    show.add_argument(
        "--augment", action="store_true", help="show each image beside its augmented version"
    )
    show.add_argument(
        "--diffaugment",
        metavar="POLICY",
        help="also show DiffAugment, e.g. color,translation,cutout",
    )
    show.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="augment setting, e.g. rotate_p=1"
    )
    show.add_argument("--seed", type=int, default=0)
    add_encrypt_option(show)
    show.set_defaults(func=_data_show)

    ed = verbs.add_parser("edit", help="edit images with a trained model")
    ev = ed.add_subparsers(dest="edit_verb", metavar="ACTION", required=True)
    from pixelsmith.cli.edit import add_parsers as add_edits

    add_edits(ev)
    from pixelsmith.cli.latent import add_parsers as add_latent
    from pixelsmith.cli.style import add_parsers as add_style

    add_latent(ev)
    add_style(ev)
    from pixelsmith.cli.faces import add_parser as add_faces
    from pixelsmith.cli.zoo import add_parser as add_zoo

    add_faces(verbs)
    from pixelsmith.cli.deploy import add_parser as add_export

    add_export(verbs)
    from pixelsmith.cli.serve import add_parser as add_serve

    add_serve(verbs)
    from pixelsmith.cli.robust import add_parsers as add_robust

    add_robust(verbs)
    from pixelsmith.cli.compress import add_parser as add_compress

    add_compress(verbs)
    from pixelsmith.cli.credentials import add_parser as add_credentials
    from pixelsmith.cli.provenance import add_parsers as add_provenance

    add_provenance(verbs)
    add_credentials(verbs)
    from pixelsmith.cli.forensics import add_parser as add_forensics

    add_forensics(verbs)
    from pixelsmith.cli.privacy import add_parser as add_privacy

    add_privacy(verbs)

    add_zoo(verbs)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one sentence and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        use_encrypt_option(args)
        with cli_warnings():
            return args.func(args)
    except UserError as e:
        print(f"pixelsmith: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixelsmith: interrupted", file=sys.stderr)
        return 130
