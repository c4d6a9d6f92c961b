"""`pixelsmith credentials init|show|sign`: signed content credentials (C2PA)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixelsmith.errors import UserError


def _init(args: argparse.Namespace) -> int:
    from pixelsmith.provenance.credentials_signer import (
        CA_CERT,
        CA_KEY,
        SIGNER_CERT,
        SIGNER_KEY,
        init_credentials,
    )

    where = init_credentials(args.dir, name=args.name, force=args.force)
    print(f"wrote a local signing CA and a signing certificate it issued ({args.name}) in {where}:")
    for name, what in (
        (CA_CERT, "the CA certificate: give it to whoever should trust your images"),
        (CA_KEY, "the CA's private key (mode 0600)"),
        (SIGNER_CERT, "the signing certificate chain (signer, then CA)"),
        (SIGNER_KEY, "the signing key (mode 0600)"),
    ):
        print(f"  {name:<11} {what}")
    print(
        f"These credentials are trusted only on machines where {CA_CERT} is installed (this "
        f"directory, or `pixelsmith credentials show IMAGE --trust {CA_CERT}` elsewhere); any "
        "other C2PA reader calls the images validly signed but untrusted."
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from pixelsmith.provenance.credentials import describe, read_credentials

    found = read_credentials(args.image, trust=args.trust, trust_local=not args.no_local_trust)
    if args.json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        print("\n".join(describe(found)))
    return 0


def _sign(args: argparse.Namespace) -> int:
    from pixelsmith.provenance import credentials as cr

    if args.parent is None and (args.operation or args.option):
        raise UserError("--operation and --option describe an edit; name its input with --parent")
    options = {}
    for item in args.option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option {item!r} is not KEY=VALUE (e.g. --option sigma=0.1)")
        try:
            options[key] = json.loads(value)  # numbers, booleans, lists; anything else is text
        except ValueError:
            options[key] = value
    image = Path(args.image)
    data = cr.read_file_bytes(image)
    mime = cr.image_mime(data, str(image))
    cr.check_output(args.out, mime)
    parent = None
    if args.parent is not None:
        parent_data = cr.read_file_bytes(args.parent, "parent")
        cr.image_mime(parent_data, str(args.parent))
        parent = cr.Parent(parent_data, None, args.parent.name)
    signer = cr.load_signer(args.dir, cert=args.cert, key=args.key)
    claim = cr.Claim(
        "edited" if parent else "created",
        model=args.model,
        model_sha256=args.model_sha256,
        operation=args.operation,
        options=options,
        parent=parent,
    )
    out = cr.sign_file(image, claim, signer, args.out)
    print(
        f"signed {out} ({claim.action}{f', model {args.model}' if args.model else ''}) as "
        f"{signer.subject}, issued by {signer.issuer}"
    )
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `credentials`."""
    p = verbs.add_parser(
        "credentials",
        help="signed content credentials (C2PA): make a local signer, read and verify manifests",
        description="Signed content credentials (C2PA) in PNG, JPEG and WebP files; see "
        "docs/credentials.md.",
    )
    sub = p.add_subparsers(dest="credentials_verb", metavar="{init,show,sign}")

    q = sub.add_parser(
        "init",
        help="make a local signing CA and a signing certificate it issues",
        description="Make a local CA and a signing certificate in --dir (default: "
        "$PIXELSMITH_CREDENTIALS or ~/.config/pixelsmith/credentials). They are trusted only "
        "where the CA is installed.",
    )
    q.add_argument("--dir", type=Path, help="where to write them")
    q.add_argument("--name", default="pixelsmith local", help="the signer's name (certificate CN)")
    q.add_argument("--force", action="store_true", help="replace credentials already there")
    q.set_defaults(func=_init)

    q = sub.add_parser(
        "show",
        help="validate an image's manifest and say what it holds",
        description="Validate IMAGE's C2PA manifest with c2pa's reader: none, tampered, "
        "untrusted (valid signature, CA not trusted here) or trusted (valid, CA given with "
        "--trust or the local CA).",
    )
    q.add_argument("image", type=Path, metavar="IMAGE")
    q.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    q.add_argument(
        "--trust",
        type=Path,
        action="append",
        metavar="CA.pem",
        help="trust signers issued by this CA (repeatable)",
    )
    q.add_argument(
        "--no-local-trust",
        action="store_true",
        help="do not trust the local CA of the credentials directory",
    )
    q.set_defaults(func=_show)

    q = sub.add_parser(
        "sign",
        help="sign an image by hand: created by a model, or an edit of --parent",
        description="Embed a signed manifest in IMAGE and write it to OUT (same format): "
        "'created' (trainedAlgorithmicMedia), or 'edited' when --parent names the input it was "
        "made from (its own manifest is kept as the ingredient).",
    )
    q.add_argument("image", type=Path, metavar="IMAGE")
    q.add_argument("-o", "--out", type=Path, required=True, metavar="OUT")
    q.add_argument("--dir", type=Path, help="credentials directory (default: the local one)")
    q.add_argument("--cert", type=Path, metavar="CHAIN.pem", help="your own certificate chain")
    q.add_argument("--key", type=Path, metavar="KEY.pem", help="the key of --cert")
    q.add_argument("--model", help="the model's name")
    q.add_argument("--model-sha256", help="the model's weights hash")
    q.add_argument("--parent", type=Path, metavar="INPUT", help="the image IMAGE was edited from")
    q.add_argument("--operation", help="the edit's name (with --parent)")
    q.add_argument("--option", action="append", metavar="KEY=VALUE", help="an option of the edit")
    q.set_defaults(func=_sign)

    def _help(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_help)
