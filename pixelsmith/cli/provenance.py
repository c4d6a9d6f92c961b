"""`pixelsmith keys new` and `pixelsmith mark embed|detect`: invisible watermarks."""

from __future__ import annotations

import argparse


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    """Register `keys` and `mark`."""
