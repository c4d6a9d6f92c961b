"""`pixelsmith faces detect|align|...`: thin wrappers over pixelsmith.faces."""

from __future__ import annotations

import argparse


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `pixelsmith faces` and its actions."""
    f = verbs.add_parser("faces", help="detect, align, anonymise and restore faces")
    fv = f.add_subparsers(dest="faces_verb", metavar="ACTION", required=True)
    from pixelsmith.cli.faces_edit import add_parsers as add_face_edits

    add_face_edits(fv)
