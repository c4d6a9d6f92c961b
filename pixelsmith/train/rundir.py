"""Numbered run folders: runs/00003-dcgan-fashion-mnist/."""

from __future__ import annotations

import re
from pathlib import Path

_NUMBERED = re.compile(r"^(\d{5})-")


def slug(text: str) -> str:
    """A short, filesystem-safe name part."""
    name = Path(text.rstrip("/")).name if ("/" in text or Path(text).exists()) else text
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower()[:40] or "data"


def new_run_dir(root: str | Path, preset: str, data: str) -> Path:
    """Create and return the next numbered run folder under root."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in root.iterdir() if (m := _NUMBERED.match(p.name))]
    number = max(taken, default=-1) + 1
    while True:
        path = root / f"{number:05d}-{slug(preset)}-{slug(data)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            number += 1
