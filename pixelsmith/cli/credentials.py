"""`pixelsmith credentials init|show`: signed content credentials (C2PA)."""

from __future__ import annotations

import argparse


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `credentials`."""
    verbs.add_parser("credentials", help="signed content credentials (C2PA)")
