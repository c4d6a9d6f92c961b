"""Run folders and what a run writes into them: runs/00003-dcgan-fashion-mnist/ holding
config.yaml, stats.jsonl, losses.png (and eval.png), grids/, checkpoints/, manifest.json and
report.md. Every file is written atomically; scores added by evaluations stay in the manifest.

An encrypted run (a key: `train --encrypt`) encrypts everything made of its data and weights:
checkpoints, grids, stats.jsonl, the plots and report.md, each as a whole file (stats.jsonl is
re-encrypted whole when its records are written, so a dropped record is refused like a changed
one).
config.yaml and manifest.json stay readable: they hold settings, counters and scores, so that
a run can be listed and compared without its key."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pixelsmith import config as cfglib
from pixelsmith.train.events import COUNTERS, EventLog
from pixelsmith.train.plot import plot_curves
from pixelsmith.utils.encryption import EncryptionKey, read_file, write_file
from pixelsmith.utils.files import atomic_write_bytes

_NUMBERED = re.compile(r"^(\d{5})-")
# stats.jsonl fields that are not curves to plot.
_NOT_CURVES = {*COUNTERS, "img_per_s"}
# An encrypted run writes its stats records at least this often (and at every checkpoint).
FLUSH_S = 30.0


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


class RunFolder:
    """The files of one run folder."""

    def __init__(self, path: str | Path, key: EncryptionKey | None = None):
        self.path, self.key = Path(path), key
        self._pending: list[str] = []
        # TensorBoard's mirror of stats.jsonl and the grids (train/events.py), when written.
        self.events: EventLog | None = None
        self._flushed = time.monotonic()
        self.checkpoints = self.path / "checkpoints"
        self.grids = self.path / "grids"
        self.stats = self.path / "stats.jsonl"
        self.manifest = self.path / "manifest.json"

    def prepare(self, config: Any) -> None:
        """Make the sub-folders and write the resolved config."""
        for sub in (self.checkpoints, self.grids):
            sub.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(cfglib.to_dict(config), sort_keys=False)
        atomic_write_bytes(self.path / "config.yaml", text.encode())

    # ---- stats.jsonl ----------------------------------------------------------------------

    def append_stats(self, record: dict[str, Any]) -> None:
        """Add one record to stats.jsonl (an encrypted run's are written at each checkpoint and
        at least every FLUSH_S seconds: the file is re-encrypted whole, so not at every record)."""
        line = json.dumps(record) + "\n"
        if self.events is not None:
            self.events.record(record)
        if self.key is None:
            with open(self.stats, "a") as f:
                f.write(line)
            return
        self._pending.append(line)
        if time.monotonic() - self._flushed > FLUSH_S:
            self.flush_stats()

    def flush_stats(self) -> None:
        """Write an encrypted run's pending records."""
        if self._pending:
            old = read_file(self.stats) if self.stats.exists() else b""
            write_file(self.stats, old + "".join(self._pending).encode(), self.key)
            self._pending.clear()
        self._flushed = time.monotonic()

    def read_stats(self) -> list[dict[str, Any]]:
        """Every record of stats.jsonl, oldest first."""
        self.flush_stats()
        if not self.stats.exists():
            return []
        text = read_file(self.stats).decode()
        return [json.loads(ln) for ln in text.splitlines() if ln.strip()]

    def drop_stats_after(self, step: int) -> None:
        """Forget records logged after `step` (a resume from an older checkpoint)."""
        if not self.stats.exists():
            return
        keep = [json.dumps(r) for r in self.read_stats() if r["step"] <= step]
        write_file(self.stats, ("\n".join(keep) + "\n" if keep else "").encode(), self.key)

    def plot(self, title: str) -> None:
        """losses.png from the logged losses, and eval.png once there are two evaluations."""
        stats = self.read_stats()
        keys = list(dict.fromkeys(k for r in stats for k in r if k not in _NOT_CURVES))
        losses = [k for k in keys if not k.startswith("eval/")]
        series = {k: [(r["step"], r[k]) for r in stats if k in r] for k in losses}
        plot_curves(series, self.path / "losses.png", f"{title} losses", key=self.key)
        evals = {k: [(r["step"], r[k]) for r in stats if k in r] for k in keys if k not in losses}
        if any(len(v) > 1 for v in evals.values()):
            plot_curves(evals, self.path / "eval.png", f"{title} scores", key=self.key)

    # ---- manifest.json and report.md ------------------------------------------------------

    def write_manifest(self, public: dict[str, Any]) -> None:
        """Write manifest.json, keeping the scores earlier evaluations stored in it."""
        public = dict(public)
        if self.manifest.exists():
            with contextlib.suppress(ValueError, OSError):
                public["scores"] = json.loads(self.manifest.read_text()).get("scores", [])
        atomic_write_bytes(self.manifest, json.dumps(public, indent=2).encode())

    def write_report(self, lines: Sequence[str]) -> None:
        """report.md: the given summary lines, then the final grid and the loss curves."""
        body = [
            f"# {self.path.name}",
            "",
            *lines,
            "",
            "![samples](grids/grid-final.png)",
            "",
            "![losses](losses.png)",
            "",
        ]
        write_file(self.path / "report.md", "\n".join(body).encode(), self.key)
