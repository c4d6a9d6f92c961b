"""`pixelsmith edit invert RUN IMAGE|FOLDER -o OUT`: wraps pixelsmith.edit.latent.invert."""

from __future__ import annotations

import argparse


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Register `pixelsmith edit invert`."""
