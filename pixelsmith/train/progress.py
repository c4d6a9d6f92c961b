"""A one-line progress display: step, rate, ETA and current losses."""

from __future__ import annotations

import sys
import time


def fmt_duration(seconds: float) -> str:
    """12s, 3m04s, 1h02m."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Redraws in place on a terminal; prints a line every `interval` seconds elsewhere."""

    def __init__(self, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.interval = 0.5 if self.tty else 15.0
        self._last = 0.0

    def update(
        self,
        step: int,
        fraction: float,
        img_per_s: float,
        eta_s: float | None,
        losses: dict[str, float],
        force: bool = False,
    ) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        eta = fmt_duration(eta_s) if eta_s is not None else "?"
        loss = " ".join(f"{k} {v:.3f}" for k, v in losses.items())
        line = f"step {step} | {100 * fraction:5.1f}% | {img_per_s:7.1f} img/s | ETA {eta} | {loss}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
