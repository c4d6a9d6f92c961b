"""The service's counters, latency histogram and gauges, rendered as Prometheus text."""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class Metrics:
    """Counters and a latency histogram, rendered as Prometheus text with the given gauges."""

    requests: Counter = field(default_factory=Counter)
    buckets: Counter = field(default_factory=Counter)
    total_s: float = 0.0
    count: int = 0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        """Count one answered request."""
        with self.lock:
            self.requests[endpoint, code] += 1
            self.count += 1
            self.total_s += seconds
            for b in LATENCY_BUCKETS:
                if seconds <= b:
                    self.buckets[b] += 1

    def text(self, gauges: dict[str, float] | None = None) -> str:
        """The Prometheus exposition: requests, latency, in-flight and `gauges` (name -> value;
        a name ending in _total is a counter)."""
        with self.lock:  # observe() runs on the event loop, this on a worker thread
            return self._text(gauges)

    def _text(self, gauges: dict[str, float] | None) -> str:
        lines = [
            "# TYPE pixelsmith_requests_total counter",
            *(
                f'pixelsmith_requests_total{{endpoint="{e}",code="{c}"}} {n}'
                for (e, c), n in sorted(self.requests.items())
            ),
            "# TYPE pixelsmith_request_seconds histogram",
            *(
                f'pixelsmith_request_seconds_bucket{{le="{b}"}} {self.buckets[b]}'
                for b in LATENCY_BUCKETS
            ),
            f'pixelsmith_request_seconds_bucket{{le="+Inf"}} {self.count}',
            f"pixelsmith_request_seconds_sum {self.total_s:.6f}",
            f"pixelsmith_request_seconds_count {self.count}",
            "# TYPE pixelsmith_in_flight gauge",
            f"pixelsmith_in_flight {self.in_flight}",
        ]
        for name, value in (gauges or {}).items():
            kind = "counter" if name.endswith("_total") else "gauge"
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            lines += [f"# TYPE pixelsmith_{name} {kind}", f"pixelsmith_{name} {shown}"]
        return "\n".join(lines) + "\n"


def resident_bytes() -> int:
    """This process's resident memory in bytes (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
