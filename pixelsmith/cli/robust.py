"""`pixelsmith attack` and `pixelsmith robust eval`: thin wrappers over pixelsmith.robust."""

from __future__ import annotations

import argparse
import json
import sys

from pixelsmith.errors import UserError

MODEL_HELP = (
    "fmnist or mnist (the shipped classifiers), a classifier run, zoo:NAME, or a TorchScript file"
)
ATTACK_MODEL_HELP = (
    MODEL_HELP + "; or an editor: zoo:sr-x2, zoo:sr-x4, zoo:denoise, zoo:inpaint, zoo:enhance "
    "or a restoration run (the input change that most distorts its output); or mtcnn, the "
    "face detector (hide the faces); or a generator with a latent space (a gan, stylegan or vae "
    "run, zoo:fmnist-stylegan, zoo:faces-stylegan): the encoder that starts its inversion"
)


def _say(args: argparse.Namespace):
    return (
        None if getattr(args, "quiet", False) else (lambda m: print(m, file=sys.stderr, flush=True))
    )


def _attack_editor(args: argparse.Namespace) -> int:
    """`pixelsmith attack EDITOR PHOTO`: PGD that most distorts (or, with --target-image, steers)
    a restoration model's output."""
    from pixelsmith.jobs.protect import attack_editor_files
    from pixelsmith.robust.attack import parse_eps

    if args.data is not None or args.input is None:
        raise UserError(f"{args.model} is an editor: give an IMAGE or FOLDER of photos to attack")
    for flag, bad, fix in (
        ("--attack", args.attack != "pgd", "editors are attacked with pgd"),
        ("--norm", args.norm != "linf", "editors are attacked under linf"),
        ("--target", args.target is not None, "use --target-image IMAGE to steer an editor"),
    ):
        if bad:
            raise UserError(f"{flag} does not apply to an editor: {fix}")
    rows = attack_editor_files(args.model, args.input, args.out, parse_eps(args.eps), args.steps,
                               target=args.target_image, mask=args.mask, seed=args.seed,
                               cap=args.max_pixels, log=_say(args))  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    r0 = rows[0]
    print(f"wrote {len(rows)} adversarial image(s) to {args.out}: {r0['editor']}, pgd linf eps "
          f"{r0['eps']:.4g}, {sum(r['disrupted'] for r in rows)} disrupted")  # fmt: skip
    for r in rows:
        line = (f"  {r['file']}: the edit's PSNR against the clean edit {r['output_psnr']:.2f} dB "
                f"(a random change of the same size: {r['random_output_psnr']:.2f} dB), the "
                f"input's {r['input_psnr']:.2f} dB: PSNR drop {r['psnr_drop']:.2f} dB")  # fmt: skip
        if r["psnr_over"] != "the whole image":
            line += f" (over {r['psnr_over']})"
        if "target_psnr_after" in r:
            line += (f"; to the target {r['target_psnr_before']:.2f} -> "
                     f"{r['target_psnr_after']:.2f} dB")  # fmt: skip
        print(line)
    return 0


def _attack_faces(args: argparse.Namespace) -> int:
    """`pixelsmith attack mtcnn PHOTO`: PGD that hides the photo's faces from the detector."""
    from pixelsmith.jobs.protect import attack_faces_files
    from pixelsmith.robust.attack import parse_eps

    if args.data is not None or args.input is None:
        raise UserError("give an IMAGE or FOLDER of photos whose faces to hide from mtcnn")
    if args.attack != "pgd" or args.norm != "linf" or args.target is not None:
        raise UserError("the face detector is attacked with pgd under linf, untargeted")
    rows = attack_faces_files(args.input, args.out, parse_eps(args.eps), args.steps,
                              seed=args.seed, cap=args.max_pixels, log=_say(args))  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    before, after = sum(r["faces_before"] for r in rows), sum(r["faces_after"] for r in rows)
    rand = sum(r["faces_after_random_change"] for r in rows)
    print(f"wrote {len(rows)} image(s) to {args.out}: mtcnn finds {after} of the {before} "
          f"face(s) it found before (after a random change of the same size: {rand}), pgd linf "
          f"eps {rows[0]['eps']:.4g}")  # fmt: skip
    return 0


def _attack_encoder(args: argparse.Namespace) -> int:
    """`pixelsmith attack GENERATOR PHOTO`: PGD that moves the start of the photo's inversion."""
    from pixelsmith.jobs.attack import attack_encoder_files
    from pixelsmith.robust.attack import parse_eps

    if args.data is not None or args.input is None:
        raise UserError(f"{args.model} is a generator: give an IMAGE or FOLDER to attack its "
                        "inversion encoder with")  # fmt: skip
    if args.attack != "pgd" or args.norm != "linf" or args.target is not None:
        raise UserError("a generator's inversion encoder is attacked with pgd under linf")
    rows = attack_encoder_files(args.model, args.input, args.out, parse_eps(args.eps), args.steps,
                                space=args.space, label=args.label, seed=args.seed,
                                encoder_steps=args.encoder_steps, cap=args.max_pixels,
                                log=_say(args))  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"wrote {len(rows)} image(s) to {args.out}: the inversion encoder of {args.model}, pgd "
          f"linf eps {rows[0]['eps']:.4g}")  # fmt: skip
    for r in rows:
        print(f"  {r['file']}: the code moved {r['code_shift']:.3f} spreads (a random change of "
              f"the same size: {r['code_shift_random']:.3f}); the start's PSNR "
              f"{r['start_psnr']:.2f} -> {r['start_psnr_attacked']:.2f} dB (random: "
              f"{r['start_psnr_random']:.2f}); the input's {r['psnr']:.2f} dB")  # fmt: skip
    return 0


def _attack(args: argparse.Namespace) -> int:
    from pixelsmith.jobs.attack import attack_data, attack_files, is_generator
    from pixelsmith.robust.attack import AttackSettings, parse_eps
    from pixelsmith.robust.editors import is_editor
    from pixelsmith.robust.models import classifier

    if args.model == "mtcnn":
        return _attack_faces(args)
    if is_editor(args.model):
        return _attack_editor(args)
    if args.model not in ("fmnist", "mnist") and is_generator(args.model):
        return _attack_encoder(args)
    if args.space or args.label is not None or args.encoder_steps:
        raise UserError("--space, --label and --encoder-steps are for generators")
    if args.target_image or args.mask:
        raise UserError("--target-image and --mask are for editors (restoration models)")
    if (args.input is None) == (args.data is None):
        raise UserError("give an IMAGE or FOLDER to attack, or --data NAME (its test split)")
    settings = AttackSettings(args.attack, args.norm, parse_eps(args.eps), args.steps,
                              args.queries, args.target, args.seed).check()  # fmt: skip
    model = classifier(args.model)
    if args.data is not None:
        rows = attack_data(model, args.data, args.n, args.out, settings, _say(args))
    else:
        rows = attack_files(model, args.input, args.out, settings, args.max_pixels, _say(args))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    changed = sum(r["adversarial"] != r["clean"] for r in rows)
    label = "label" if args.data else "clean"
    fooled = sum(r["adversarial"] != r[label] for r in rows)
    print(f"wrote {len(rows)} adversarial image(s) to {args.out}: {fooled} misclassified "
          f"({changed} changed prediction), {settings.attack} {settings.norm} eps "
          f"{settings.eps:.4g}")  # fmt: skip
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pixelsmith.data.sources import load_images
    from pixelsmith.robust import defences as d
    from pixelsmith.robust.attack import parse_eps
    from pixelsmith.robust.evaluate import evaluate, plot_curves
    from pixelsmith.robust.models import classifier

    model = classifier(args.model)
    eps = [parse_eps(e) for e in args.eps.split(",") if e.strip()]
    attacked, name = model, model.name
    if args.defence:
        kind, _, value = args.defence.partition(":")
        settings = {"jpeg": "quality", "bits": "bits", "median": "size", "resize-pad": "scale"}
        extra = (
            {settings[kind]: type(1 if kind != "resize-pad" else 1.0)(value)}
            if value and kind in settings
            else {}
        )
        attacked = d.Defended(model, d.defence(kind, **extra), bpda=args.bpda, eot=args.eot)
        name = f"{model.name} + {attacked.name}"
    c, h, w = model.image_shape or (None, None, None)
    s = load_images(args.data, split="test", channels=c, size=(h, w) if h else None, limit=args.n)
    if s.labels is None:
        raise UserError(f"{args.data} has no labels; an evaluation needs a labelled data set")
    card = {"model": name, "model_sha256": model.sha256, "data": s.name, "split": s.split,
            "data_fingerprint": s.fingerprint}  # fmt: skip
    ev = evaluate(attacked, s.images.float() / 255, s.labels.long(), eps, args.norm,
                  steps=args.steps, queries=args.queries, seed=args.seed, card=card,
                  log=_say(args))  # fmt: skip
    if args.json:
        print(json.dumps(ev.to_dict(), indent=1))
    else:
        print(ev.table())
    if args.plot:
        print(f"wrote {plot_curves({name: ev}, args.plot)}", file=sys.stderr)
    return 0


def _protect(args: argparse.Namespace) -> int:
    from pixelsmith.jobs import edit_files, operations
    from pixelsmith.jobs.files import stderr

    op = operations()["protect"]
    result = edit_files(op, args.input, args.out, max_pixels=args.max_pixels,
                        log=None if args.quiet or args.json else stderr,
                        **{o.name: getattr(args, o.name) for o in op.options})  # fmt: skip
    if args.json:
        print(json.dumps(result.reports, indent=1))
        return 0
    print(result.summary(args.out))
    for r in result.reports:
        edits = ", ".join(
            f"{k} {'disrupted' if v else 'not disrupted'} (MSE {r['distortion_mse_pm1'][k]:.4f})"
            for k, v in r["disrupted"].items()
        )
        print(f"  {r['out']}: PSNR {r['psnr']:.2f} dB; {edits} (disrupted: MSE above 0.05 "
              "on the [-1, 1] scale)")  # fmt: skip
    return 0


def _certify(args: argparse.Namespace) -> int:
    """`pixelsmith robust certify MODEL`: certified accuracy by randomised smoothing."""
    from pixelsmith.data.sources import load_images
    from pixelsmith.robust.models import classifier
    from pixelsmith.robust.smoothing import ABSTAIN, certified_accuracy, certify

    try:
        radii = [float(r) for r in args.radii.split(",") if r.strip()]
    except ValueError:
        raise UserError(f"--radii takes numbers such as 0,0.25,0.5, got {args.radii!r}") from None
    if not radii or min(radii) < 0:
        raise UserError(f"--radii takes L2 radii of 0 or more, got {args.radii!r}")
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    model = classifier(args.model)
    c, h, w = model.image_shape or (None, None, None)
    s = load_images(args.data, split="test", channels=c, size=(h, w) if h else None, limit=args.n)
    if s.labels is None:
        raise UserError(f"{args.data} has no labels; certified accuracy needs a labelled set")
    x, y = s.images.float() / 255, s.labels.long()
    cert = certify(model, x, args.sigma, n0=args.n0, n=args.samples, alpha=args.alpha,
                   seed=args.seed)  # fmt: skip
    acc = certified_accuracy(cert, y, radii)
    result = {
        "model": args.model, "model_sha256": model.sha256, "data": f"{args.data}:test",
        "n": len(x), "sigma": args.sigma, "n0": args.n0, "samples": args.samples,
        "alpha": args.alpha, "seed": args.seed,
        "abstain": float((cert.prediction == ABSTAIN).float().mean()),
        "certified_accuracy": dict(zip(map(str, radii), acc, strict=True)),
    }  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{args.model} smoothed with sigma {args.sigma} ({args.samples} draws, alpha "
          f"{args.alpha}), {len(x)} {args.data} test images: abstains on "
          f"{result['abstain']:.1%}")  # fmt: skip
    print("L2 radius  certified accuracy")
    for r, a in zip(radii, acc, strict=True):
        print(f"{r:9.3g}  {a:.3f}")
    return 0


def _common(p: argparse.ArgumentParser, model_help: str = MODEL_HELP) -> None:
    p.add_argument("model", metavar="MODEL", help=model_help)
    p.add_argument("--norm", choices=["linf", "l2"], default="linf")
    p.add_argument("--steps", type=int, default=100, help="attack steps (default 100)")
    p.add_argument("--queries", type=int, default=5000, help="Square's queries (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    """Register `pixelsmith attack` and `pixelsmith robust eval`."""
    about = (
        "adversarial images of a classifier (files, or a data set's test split), or of an editor"
    )
    a = verbs.add_parser("attack", help=about, description=about)
    _common(a, ATTACK_MODEL_HELP)
    a.add_argument("input", nargs="?", metavar="IMAGE|FOLDER", help="images to attack")
    a.add_argument(
        "--data", help="attack the test split of this data set instead (e.g. fashion-mnist)"
    )
    a.add_argument("--n", type=int, default=100, help="with --data: how many images (default 100)")
    a.add_argument("--attack", default="pgd", help="fgsm, pgd, cw, apgd, apgd-t or square")
    a.add_argument("--eps", default="8/255", help="the budget, e.g. 0.1 or 8/255 (default 8/255)")
    a.add_argument("--target", type=int, help="a class to push every image to (targeted)")
    a.add_argument("-o", "--out", required=True, help="OUT.png for one image, else a folder")
    a.add_argument("--max-pixels", type=int, help="refuse images above this many pixels")
    a.add_argument(
        "--target-image", metavar="IMAGE", help="an editor: pull its output toward this image"
    )
    a.add_argument(
        "--mask", help="an inpainting editor: its holes (white = fill); else random holes"
    )
    a.add_argument("--space", help="a generator: the latent space to invert into (z, w, w+)")
    a.add_argument("--label", type=int, help="a conditional generator: the images' class")
    a.add_argument(
        "--encoder-steps", type=int, help="a generator: its inversion encoder's training steps"
    )
    a.set_defaults(func=_attack)

    from pixelsmith.cli.edit import add_operation

    add_operation(verbs, "protect", "protect")  # `pixelsmith protect`, as `pixelsmith edit protect`
    verbs.choices["protect"].set_defaults(func=_protect)

    r = verbs.add_parser("robust", help="evaluate robustness honestly")
    rv = r.add_subparsers(dest="robust_verb", metavar="ACTION", required=True)
    about = ("robust accuracy under the standard suite (APGD-CE, APGD-T, Square), worst case "
             "per image, with a card and gradient-masking checks")  # fmt: skip
    e = rv.add_parser("eval", help=about, description=about)
    _common(e)
    e.add_argument("--data", default="fashion-mnist", help="a labelled data set (its test split)")
    e.add_argument("--n", type=int, default=1000, help="test images (default 1000)")
    e.add_argument("--eps", default="0.05,0.1,0.2", help="budgets, comma-separated (8/255 works)")
    e.add_argument(
        "--defence",
        help="an input transform in front: jpeg[:Q], bits[:B], median[:K], resize-pad[:S], denoise",
    )
    e.add_argument("--bpda", action="store_true", help="attack the defence with BPDA")
    e.add_argument("--eot", type=int, default=1, help="EoT draws for a random defence")
    e.add_argument("--plot", metavar="PNG", help="also draw the security curve")
    e.set_defaults(func=_eval)

    about = ("certified accuracy against L2 radii by randomised smoothing (Cohen et al. 2019), "
             "with the abstain rate")  # fmt: skip
    c = rv.add_parser("certify", help=about, description=about)
    c.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    c.add_argument("--data", default="fashion-mnist", help="a labelled data set (its test split)")
    c.add_argument("--n", type=int, default=100, help="test images (default 100)")
    c.add_argument("--sigma", type=float, default=0.25, help="the noise's std (default 0.25)")
    c.add_argument("--samples", type=int, default=1000, help="noisy draws per image (1000)")
    c.add_argument("--n0", type=int, default=100, help="draws that choose the class (100)")
    c.add_argument("--alpha", type=float, default=0.001, help="failure probability (0.001)")
    c.add_argument("--radii", default="0,0.25,0.5,0.75,1", help="L2 radii, comma-separated")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=_certify)
