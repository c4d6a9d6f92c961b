"""Load on the HTTP service: 32 clients for 60 s against the default generator and an edit.

Starts `pixelsmith serve zoo:fmnist-gan` on a free loopback port (a separate process, as a
user would run it), warms it, then runs CLIENTS threads for SECONDS: each loops over a
generation (n = 1-4, PNG) and an edit (denoise of a 96x96 photo crop), honouring Retry-After
(capped at 1 s) when refused. Prints throughput, p50/p99 latency per endpoint, every status
code seen, the server's resident memory after warm-up and at the end, and the answer's bytes
per image in each output format and in the seed-only mode. Targets (issue 12): no 5xx, every
refusal a 429/503 by design, memory within 10% of its post-warm-up value.

    python bench/serve_load.py [--clients 32] [--seconds 60] [--backend auto]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "serve_load.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """A process's resident memory in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photo_png() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[40:136, 160:256]).save(buf, "PNG")
    return buf.getvalue()


def start(port: int, backend: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("pixelsmith")
    cmd = [str(exe), "serve", "zoo:fmnist-gan", "--port", str(port), "--backend", backend]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=60).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped: {proc.stdout.read() if proc.stdout else ''}")
    proc.kill()
    raise SystemExit("the server did not become ready in 300 s")


def bandwidth(base: str) -> dict[str, float]:
    """Mean bytes per image of 16 generated images in each format, and per seed-only answer."""
    out = {}
    for fmt in ("png", "webp", "jpeg"):
        body = {"n": 16, "seed": 0, "output_format": fmt, "quality": 80}
        data = httpx.post(f"{base}/v1/images/generations", json=body, timeout=120).json()["data"]
        out[fmt] = statistics.mean(len(base64.b64decode(d["b64_json"])) for d in data)
    r = httpx.post(f"{base}/v1/images/generations", json={"n": 16, "response_format": "seed"})
    out["seed-only answer, per image"] = len(r.content) / 16
    return out


def client(base: str, stop: float, photo: bytes, log: list, rng: np.random.Generator) -> None:
    with httpx.Client(base_url=base, timeout=120) as c:
        i = 0
        while time.time() < stop:
            i += 1
            t0 = time.perf_counter()
            if i % 2:
                endpoint = "generations"
                n = int(rng.integers(1, 5))
                r = c.post("/v1/images/generations", json={"n": n, "seed": int(rng.integers(1e6))})
            else:
                endpoint = "edits (denoise)"
                files = {"image": ("p.png", photo, "image/png")}
                r = c.post("/v1/images/edits", data={"operation": "denoise"}, files=files)
            log.append((endpoint, r.status_code, time.perf_counter() - t0, time.time()))
            if r.status_code in (429, 503):
                time.sleep(min(1.0, float(r.headers.get("Retry-After", 1))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t_start = time.time()
    proc = start(port, args.backend)
    try:
        startup_s = time.time() - t_start
        models = httpx.get(f"{base}/v1/models").json()["data"]
        photo = photo_png()
        # warm-up: every path once, then a short burst so allocator pools reach their size
        warm_log: list = []
        warm = [
            threading.Thread(
                target=client,
                args=(base, time.time() + 8, photo, warm_log, np.random.default_rng(100 + k)),
            )
            for k in range(args.clients)
        ]
        [t.start() for t in warm]
        [t.join() for t in warm]
        mem_warm = rss_mb(proc.pid)
        load_before = os.getloadavg()[0]
        log: list = []
        stop = time.time() + args.seconds
        threads = [
            threading.Thread(target=client, args=(base, stop, photo, log, np.random.default_rng(k)))
            for k in range(args.clients)
        ]
        [t.start() for t in threads]
        mid_mem = []
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            mid_mem.append(rss_mb(proc.pid))
        [t.join() for t in threads]
        mem_end = rss_mb(proc.pid)
        load_after = os.getloadavg()[0]
        sizes = bandwidth(base)
        alive = httpx.get(f"{base}/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
    rows = {}
    for endpoint in sorted({e for e, *_ in log}):
        ok = [s for e, code, s, _ in log if e == endpoint and code == 200]
        codes = Counter(code for e, code, *_ in log if e == endpoint)
        ok.sort()
        rows[endpoint] = {
            "ok_per_s": len(ok) / args.seconds,
            "p50_ms": 1000 * statistics.median(ok) if ok else None,
            "p99_ms": 1000 * ok[min(len(ok) - 1, round(0.99 * (len(ok) - 1)))] if ok else None,
            "codes": dict(sorted(codes.items())),
        }
    codes = Counter(code for _, code, *_ in log)
    five = sum(n for c, n in codes.items() if c >= 500 and c != 503)
    unexpected = sum(n for c, n in codes.items() if c not in (200, 429, 503))
    drift = (mem_end - mem_warm) / mem_warm
    print(
        f"pixelsmith serve zoo:fmnist-gan (backend: {models[0].get('backend')}), "
        f"{args.clients} clients, {args.seconds:g} s; started in {startup_s:.1f} s; "
        f"load average {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} CPUs)"
    )
    print("| endpoint | answered/s | p50 ms | p99 ms | status codes |")
    print("|---|---|---|---|---|")
    for e, r in rows.items():
        p50 = f"{r['p50_ms']:.0f}" if r["p50_ms"] is not None else "-"
        p99 = f"{r['p99_ms']:.0f}" if r["p99_ms"] is not None else "-"
        print(f"| {e} | {r['ok_per_s']:.1f} | {p50} | {p99} | {r['codes']} |")
    print(
        f"memory: {mem_warm:.0f} MiB after warm-up, {mem_end:.0f} MiB at the end "
        f"({100 * drift:+.1f}%; max during {max(mid_mem):.0f} MiB)"
    )
    print("bytes per image: " + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()))
    verdicts = {
        "no 5xx but 503 by design": five == 0,
        "every refusal a 429/503": unexpected == 0,
        "memory within 10% after warm-up": abs(drift) <= 0.10,
        "server alive after": alive,
    }
    for k, v in verdicts.items():
        print(f"{'MET   ' if v else 'MISSED'} {k}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "command": "python bench/serve_load.py " + " ".join(sys.argv[1:]),
                "clients": args.clients,
                "seconds": args.seconds,
                "backend": models[0].get("backend"),
                "startup_s": round(startup_s, 1),
                "cpus": os.cpu_count(),
                "load_average_1min": {"before": load_before, "after": load_after},
                "endpoints": rows,
                "memory_mib": {"after_warmup": mem_warm, "end": mem_end, "max": max(mid_mem)},
                "bytes_per_image": sizes,
                "verdicts": verdicts,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
