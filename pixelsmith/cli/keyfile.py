"""--encrypt KEYFILE on the commands that read or write encrypted files."""

from __future__ import annotations

import argparse


def add_encrypt_option(parser: argparse.ArgumentParser, about: str | None = None) -> None:
    """--encrypt KEYFILE: the key that reads (and for training writes) encrypted files."""
    parser.add_argument(
        "--encrypt",
        metavar="KEYFILE",
        help=(about or "read encrypted runs and images with this key")
        + " (the same as PIXELSMITH_ENCRYPTION_KEY=KEYFILE); keep the key apart from the data",
    )


def use_encrypt_option(args: argparse.Namespace) -> None:
    """Check the key of --encrypt (before anything is written) and make it the active one."""
    if getattr(args, "encrypt", None):
        import os

        from pixelsmith.utils import encryption

        encryption.load_encryption_key(args.encrypt)
        os.environ[encryption.ENV] = os.path.abspath(args.encrypt)
