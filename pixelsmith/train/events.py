"""TensorBoard event files beside stats.jsonl: the same records (losses, learning-rate factor,
rate, evaluation scores) as scalars and the fixed-seed grids as images, in <run>/tensorboard/.

They are written only when the `tensorboard` extra is installed (torch's SummaryWriter needs its
protobuf definitions) and never for an encrypted run: event files are plain protobuf, so they
would carry the run's images and scores out of the encryption. A resume purges the events
logged after the checkpoint it starts from, as stats.jsonl drops its records.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

# stats.jsonl fields that are counters, not curves (the rate is plotted apart from the losses).
COUNTERS = frozenset({"step", "kimg", "time_s", "epoch", "eval_n"})
FOLDER = "tensorboard"


def available() -> bool:
    """Whether the tensorboard extra is installed."""
    return importlib.util.find_spec("tensorboard") is not None


class EventLog:
    """A SummaryWriter fed with stats records and grids, opened by the first of them (its
    flushing thread would outlive a Trainer built and never trained)."""

    def __init__(self, run_dir: str | Path, purge_step: int | None = None):
        self.path = Path(run_dir) / FOLDER
        self._purge_step = purge_step
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        """The open SummaryWriter."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path), purge_step=self._purge_step, flush_secs=30)
            self._purge_step = None  # a reopened log must keep what this one wrote
        return self._writer

    @property
    def is_open(self) -> bool:
        """Whether a writer is open (nothing written yet, or closed: no)."""
        return self._writer is not None

    def record(self, record: dict[str, Any]) -> None:
        """Every number of one stats.jsonl record but its counters, at its step."""
        step = int(record["step"])
        for key, value in record.items():
            if key not in COUNTERS and isinstance(value, (int, float)):
                self.writer.add_scalar(_tag(key), value, step)

    def grid(self, name: str, image: torch.Tensor, step: int) -> None:
        """A grid image (CHW in [0, 1]) under `name`, at `step`."""
        self.writer.add_image(name, image.clamp(0, 1), step, dataformats="CHW")

    def close(self) -> None:
        """Write everything pending and close the file (a later record opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _tag(key: str) -> str:
    """Group losses under loss/, scores stay under eval/, the rest under run/."""
    if "/" in key:
        return key
    if key in ("img_per_s", "lr_factor"):
        return f"run/{key}"
    return f"loss/{key}"
