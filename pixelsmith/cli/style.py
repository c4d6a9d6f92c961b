"""`pixelsmith edit style CONTENT --style STYLE -o OUT`: a wrapper over pixelsmith.edit.style."""

from __future__ import annotations

import argparse


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Register `pixelsmith edit style`."""
