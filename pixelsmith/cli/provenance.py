"""`pixelsmith keys new` and `pixelsmith mark embed|detect`: invisible watermarks."""

from __future__ import annotations

import argparse
import json

from pixelsmith.errors import UserError


def _keys_new(args: argparse.Namespace) -> int:
    from pixelsmith.provenance.keys import new_key, save_key

    if args.kind == "encryption":
        from pixelsmith.utils import encryption

        secret = encryption.new_encryption_key()
        path = encryption.save_encryption_key(secret, args.out, force=args.force)
        print(f"wrote {path}: encryption key {secret.key_id} (AES-256-GCM); keep it apart from "
              "the data it protects: without it the data cannot be read")  # fmt: skip
        return 0
    if args.kind != "watermark":
        raise UserError(f"unknown key kind {args.kind!r}; `keys new watermark` makes one")
    key = new_key(args.message_bits)
    path = save_key(key, args.out, force=args.force)
    print(
        f"wrote {path}: watermark key {key.key_id} ({key.key_bits} key bits, "
        f"{key.message_bits} message bits); keep it secret: it both marks and detects"
    )
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    from pixelsmith.utils import encryption

    old = encryption.load_encryption_key(args.old)
    new = encryption.load_encryption_key(args.new)
    done = encryption.rotate(args.path, old, new)
    print(f"re-encrypted {len(done)} file(s) under {args.path} from key {old.key_id} to "
          f"{new.key_id}; name the new key in PIXELSMITH_ENCRYPTION_KEY from now on")  # fmt: skip
    return 0


def _keys_copy(args: argparse.Namespace) -> int:
    from pixelsmith.utils import encryption

    key = encryption.load_encryption_key(args.key)
    encrypting = args.keys_verb == "encrypt"
    done = encryption.copy_tree(args.input, args.out, key, encrypting=encrypting)
    what = "encrypted" if encrypting else "decrypted"
    print(f"{what} {len(done)} file(s) from {args.input} into {args.out} (key {key.key_id})")
    return 0


def _embed(args: argparse.Namespace) -> int:
    from pixelsmith.jobs.files import stderr
    from pixelsmith.jobs.watermark import mark_files

    result = mark_files(args.input, args.out, args.key, message=args.message, psnr=args.psnr,
                        max_pixels=args.max_pixels, log=None if args.quiet else stderr)  # fmt: skip
    print(result.summary(args.out))
    return 0


def _describe(row: dict) -> str:
    found = "marked" if row["detected"] else "no mark"
    bits = f"{row['matched']}/{row['key_bits']} key bits"
    text = f"{row['file']}: {found} (p = {row['p_value']:.2g}, {bits}"
    if row["detected"]:
        msg = row["message_text"]
        text += f"; message {msg!r}" if msg else f"; message 0x{row['message_hex']}"
    return text + ")"


def _detect(args: argparse.Namespace) -> int:
    from pixelsmith.jobs.watermark import detect_files

    rows = detect_files(args.input, args.key, fpr=args.fpr, expect=args.expect,
                        max_pixels=args.max_pixels)  # fmt: skip
    if args.json:
        print(json.dumps(rows if len(rows) != 1 else rows[0], indent=1))
    else:
        for row in rows:
            print(_describe(row))
        if len(rows) > 1:
            print(f"{sum(r['detected'] for r in rows)} of {len(rows)} image(s) marked "
                  f"(false-positive rate per image at most {args.fpr:g})")  # fmt: skip
    return 0


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    """Register `keys` and `mark`."""
    from pixelsmith.provenance.keys import MAX_MESSAGE_BITS
    from pixelsmith.provenance.watermark import DEFAULT_FPR, DEFAULT_PSNR

    keys = verbs.add_parser("keys", help="make keys (watermark and encryption keys)")
    kv = keys.add_subparsers(dest="keys_verb", metavar="ACTION", required=True)
    new = kv.add_parser("new", help="make a new secret key")
    new.add_argument("kind", choices=["watermark", "encryption"], help="what the key is for")
    new.add_argument("-o", "--out", required=True, metavar="KEYFILE")
    new.add_argument("--message-bits", type=int, default=32,
                     help=f"bits a mark carries beside the key (multiple of 8, at most "
                     f"{MAX_MESSAGE_BITS}; default 32)")  # fmt: skip
    new.add_argument("--force", action="store_true", help="replace an existing file")
    new.set_defaults(func=_keys_new)

    rot = kv.add_parser("rotate", help="re-encrypt a run folder or file with a new key")
    rot.add_argument("path", metavar="RUN|FILE")
    rot.add_argument("--old", required=True, metavar="KEYFILE", help="the key it is encrypted with")
    rot.add_argument("--new", required=True, metavar="KEYFILE", help="the key to encrypt it with")
    rot.set_defaults(func=_keys_rotate)

    for verb, about in (
        ("encrypt", "encrypted copies of a file or a folder (a data set: pixelsmith reads it "
         "with the key, never decrypting to disk)"),
        ("decrypt", "plain copies of an encrypted file or folder (a run's grid, a data set)"),
    ):  # fmt: skip
        cp = kv.add_parser(verb, help=about, description=about)
        cp.add_argument("input", metavar="IN")
        cp.add_argument("-o", "--out", required=True, metavar="OUT")
        cp.add_argument("--key", required=True, metavar="KEYFILE")
        cp.set_defaults(func=_keys_copy)

    mark = verbs.add_parser("mark", help="invisible watermarks: embed and detect")
    mv = mark.add_subparsers(dest="mark_verb", metavar="ACTION", required=True)
    em = mv.add_parser("embed", help="mark an image or a folder of images")
    em.add_argument("input", metavar="IN")
    em.add_argument("-o", "--out", required=True, metavar="OUT")
    em.add_argument("--key", required=True, metavar="KEYFILE")
    em.add_argument("--message", metavar="TEXT|0xHEX", help="what the mark carries")
    em.add_argument("--psnr", type=float, default=DEFAULT_PSNR,
                    help=f"the marked image's PSNR in dB (default {DEFAULT_PSNR})")  # fmt: skip
    em.add_argument("--max-pixels", type=int, default=None)
    em.add_argument("--quiet", action="store_true")
    em.set_defaults(func=_embed)
    de = mv.add_parser("detect", help="look for a key's mark")
    de.add_argument("input", metavar="IN")
    de.add_argument("--key", required=True, metavar="KEYFILE")
    de.add_argument("--fpr", type=float, default=DEFAULT_FPR,
                    help=f"false positives allowed per image ({DEFAULT_FPR:g})")  # fmt: skip
    de.add_argument("--expect", metavar="TEXT|0xHEX",
                    help="the message it should carry (adds its bit accuracy)")  # fmt: skip
    de.add_argument("--json", action="store_true")
    de.add_argument("--max-pixels", type=int, default=None)
    de.set_defaults(func=_detect)
