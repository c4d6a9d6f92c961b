"""How long `pixelsmith serve` takes to choose its backends, the first start and a later one.

Each start is a fresh process with the same fresh cache folder (PIXELSMITH_CACHE) and an empty
torch.compile cache for the first, as for a new user: the first start times the latency ladder
(eager, channels_last, torch.compile, ONNX Runtime) and remembers its choice; the second builds
the remembered backend from the kept ONNX export. Prints seconds per start and their ratio.

    python bench/serve_start.py                      # zoo:fmnist-gan and zoo:fmnist-stylegan
    python bench/serve_start.py zoo:fmnist-gan --json bench/results/serve_start.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ONE_START = """
import sys, time
t0 = time.perf_counter()
from pixelsmith.deploy.choice import choose_backend
from pixelsmith.generate.load import load_model
m = load_model(sys.argv[1])
t1 = time.perf_counter()
c = choose_backend(m, log=lambda line: print("   ", line, file=sys.stderr, flush=True))
t2 = time.perf_counter()
print(f"{c.name} {int(c.remembered)} {t2 - t1:.2f} {t2 - t0:.2f}")
"""


def start(model: str, env: dict[str, str]) -> dict[str, object]:
    """One process choosing the model's backend: its pick and seconds."""
    out = subprocess.run(
        [sys.executable, "-c", ONE_START, model], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    name, remembered, choose, process = out.stdout.split()
    return {"backend": name, "remembered": remembered == "1", "choose_s": float(choose),
            "process_s": float(process)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=["zoo:fmnist-gan", "zoo:fmnist-stylegan"])
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args()
    rows = []
    print(f"{'model':22} {'first start s':>14} {'second start s':>15} {'ratio':>7}  backend")
    for model in a.models:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as inductor:
            env = {**os.environ, "PIXELSMITH_CACHE": cache, "TORCHINDUCTOR_CACHE_DIR": inductor}
            first, second = start(model, env), start(model, env)
        assert not first["remembered"] and second["remembered"], (first, second)
        ratio = first["choose_s"] / max(second["choose_s"], 1e-3)
        print(f"{model:22} {first['choose_s']:14.1f} {second['choose_s']:15.2f} {ratio:6.0f}x  "
              f"{first['backend']} / {second['backend']}")  # fmt: skip
        rows.append({"model": model, "first": first, "second": second})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"when": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
