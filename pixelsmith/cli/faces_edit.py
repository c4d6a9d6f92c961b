"""`pixelsmith faces anonymise|restore`: thin wrappers over pixelsmith.faces."""

from __future__ import annotations

import argparse


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Register the face edits under `pixelsmith faces`."""
