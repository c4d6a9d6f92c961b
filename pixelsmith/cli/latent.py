"""`pixelsmith edit invert|interpolate|direction|mix`: thin wrappers over pixelsmith.edit.latent."""

from __future__ import annotations

import argparse


def add_parsers(actions: argparse._SubParsersAction) -> None:
    """Register the latent edits under `pixelsmith edit`."""
    from pixelsmith.cli.invert import add_parsers as add_invert

    add_invert(actions)
