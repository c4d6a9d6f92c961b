"""Periodic work beside the training algorithm, each with its own period: logging losses,
fixed-seed grids, checkpoints, evaluations and the progress line. They run on the main process
only, after every step, in the order `default_hooks` lists them: a step's checkpoint is on disk
before its evaluation starts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from pixelsmith.errors import warn

if TYPE_CHECKING:
    from pixelsmith.train.loop import Trainer


class Hook:
    """Work the trainer does after some steps."""

    def after_step(self, t: Trainer, logs: dict[str, float]) -> None:
        """Called after every step with its losses."""


class LogStats(Hook):
    """Every `every` steps: the mean losses since the last record and the rate, to stats.jsonl."""

    def __init__(self, every: int, consumed: int):
        self.every = every
        self.acc: dict[str, list[float]] = {}
        self.last = (time.monotonic(), consumed)

    def after_step(self, t: Trainer, logs: dict[str, float]) -> None:
        for k, v in logs.items():
            self.acc.setdefault(k, []).append(v)
        if t.state.step % self.every:
            return
        now, consumed = time.monotonic(), t.batches.consumed
        # Rates count the real images read (a WGAN-GP step reads n_critic batches).
        rate = (consumed - self.last[1]) / max(now - self.last[0], 1e-9)
        self.last = (now, consumed)
        t.log_stats({k: float(np.mean(v)) for k, v in self.acc.items()}, rate)
        self.acc = {}


class SaveGrid(Hook):
    """Every `every` steps: a fixed-seed sample grid into grids/."""

    def __init__(self, every: int):
        self.every = every

    def after_step(self, t: Trainer, logs: dict[str, float]) -> None:
        if t.state.step % self.every == 0:
            t.save_grid(f"grid-{t.state.step:06d}.png")


class SaveCheckpoint(Hook):
    """Every `every` steps, and whenever `minutes` passed since the last one: a checkpoint."""

    def __init__(self, every: int, minutes: float):
        self.every, self.seconds = every, minutes * 60
        self.last = time.monotonic()

    def after_step(self, t: Trainer, logs: dict[str, float]) -> None:
        if t.state.step % self.every == 0 or time.monotonic() - self.last > self.seconds:
            t.save()
            self.last = time.monotonic()


class Evaluate(Hook):
    """Every `every` steps: the run's scores, after that step's checkpoint is on disk.

    A failing evaluation is reported and training goes on: it never costs the interval since
    the last checkpoint.
    """

    def __init__(self, every: int):
        self.every = every

    def after_step(self, t: Trainer, logs: dict[str, float]) -> None:
        if t.state.step % self.every:
            return
        if t.saved_step != t.state.step:
            t.save()
        t.progress.close()
        try:
            t.evaluate()
        except Exception as e:  # noqa: BLE001 - any failure is reported, training goes on
            warn(
                f"the evaluation at step {t.state.step} failed ({type(e).__name__}: {e}); "
                f"training goes on, and checkpoint {t.state.step} is saved"
            )


class ShowProgress(Hook):
    """After every step: the progress line (step, share of the budget, rate, ETA, losses)."""

    def __init__(self, consumed: int, fraction: float):
        self.t0, self.read0, self.frac0 = time.monotonic(), consumed, fraction

    def after_step(self, t: Trainer, logs: dict[str, float]) -> None:
        frac, spent = t.fraction(), time.monotonic() - self.t0
        eta = None
        if frac > self.frac0 and spent > 5:
            eta = spent / (frac - self.frac0) * (1 - frac)
        rate = (t.batches.consumed - self.read0) / max(spent, 1e-9)
        t.progress.update(t.state.step, min(frac, 1.0), rate, eta, logs)


def default_hooks(t: Trainer) -> list[Hook]:
    """The hooks of a run, from its train settings."""
    tc = t.cfg.train
    hooks: list[Hook] = [
        LogStats(tc.log_every, t.batches.consumed),
        SaveGrid(tc.sample_every),
        SaveCheckpoint(tc.checkpoint_every, tc.checkpoint_minutes),
    ]
    if tc.eval_every:
        hooks.append(Evaluate(tc.eval_every))
    return [*hooks, ShowProgress(t.batches.consumed, t.fraction())]
