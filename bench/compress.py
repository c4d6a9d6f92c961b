"""Compression that buys speed (or does not): the teacher and every compressed variant in one run.

Variants of the teacher (default zoo:fmnist-gan):
- distill-W: students distilled by `pixelsmith compress TEACHER --width W` (given with
  --students RUN ...; without it, trained here at widths 0.5 and 0.25 for --minutes each);
- prune-W: structured channel pruning to width W (the channels with the largest BatchNorm
  |scale| kept), no fine-tuning;
- magnitude-P: unstructured magnitude pruning (torch.nn.utils.prune, fraction P of each layer's
  weights zeroed, masks made permanent): the same dense network with zeros;
- int8-static / int8-dynamic: ONNX Runtime quantisation of the exported teacher (static: QDQ,
  per-channel int8 weights, uint8 activations calibrated on 256 z; dynamic: int8 weights where
  ONNX Runtime quantises dynamically); the note says which operators ONNX Runtime's optimised
  graph really runs in int8 and which stay fp32.
Every variant runs in eager PyTorch and ONNX Runtime (int8 in ONNX Runtime only), batch-1 calls
and batch-64 calls interleaved round by round in rotating order in this one process, at
--threads intra-op threads; speed-ups are against the teacher on the same backend. FID: 10,000
samples (seed 0, --quick 2,000) against Fashion-MNIST test in pixelsmith's fmnist classifier
features, the protocol of `pixelsmith eval --metrics fid`. File size: the variant's ONNX file.

    .venv/bin/python bench/compress.py --students /work/runs/compress/00000-distill-fashion-mnist
    .venv/bin/python bench/compress.py --quick --students RUN
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelsmith.deploy.compress import (  # noqa: E402
    Variant,
    capability_line,
    cpu_capability,
    magnitude_prune,
    measure,
    structured_prune,
    table,
    zero_fraction,
)
from pixelsmith.generate.load import load_model  # noqa: E402
from pixelsmith.utils import checkpoint_file as ckf  # noqa: E402


def train_student(teacher: str, width: float, minutes: float, out: Path) -> Path:
    """Distil a student here (one thread) and return its run folder."""
    cmd = [sys.executable, "-m", "pixelsmith", "compress", teacher, "--width", str(width)]
    cmd += ["--minutes", str(minutes), "-o", str(out), "--set", "train.threads=1", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(x for x in r.stderr.splitlines() if x.startswith("run folder:"))
    return Path(line.split(":", 1)[1].strip())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="zoo:fmnist-gan")
    p.add_argument("--students", nargs="*", default=[], help="distill run folders")
    p.add_argument("--minutes", type=float, default=15, help="per student trained here")
    p.add_argument("--runs", default="/work/runs/compress", help="where students train")
    p.add_argument("--prune", default="0.75,0.5", help="structured pruning widths")
    p.add_argument("--magnitude", default="0.5,0.9", help="unstructured pruning fractions")
    p.add_argument("--int8", default="static,dynamic")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=200, help="batch-1 calls per variant")
    p.add_argument("--quick", action="store_true", help="fewer rounds, FID from 2,000 samples")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "compress.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rounds, fid_n, big_rounds = (15, 2000, 3) if a.quick else (a.rounds, 10_000, 15)
    teacher = load_model(a.teacher)
    students = [Path(s) for s in a.students]
    if not students:
        students = [train_student(a.teacher, w, a.minutes, Path(a.runs)) for w in (0.5, 0.25)]
    variants = [Variant("teacher", teacher)]
    for s in students:
        man = ckf.read_manifest(ckf.resolve_checkpoint(s))
        note = f"{man['step']} steps, init {man['config']['model']['student_init']}"
        variants.append(
            Variant(f"distill-{man['config']['model']['width']:g}", load_model(s), note=note)
        )
    for w in [float(x) for x in a.prune.split(",") if x]:
        variants.append(Variant(f"prune-{w:g}", structured_prune(teacher, w), note="no fine-tune"))
    for f in [float(x) for x in a.magnitude.split(",") if x]:
        m = magnitude_prune(teacher, f)
        variants.append(Variant(f"magnitude-{f:g}", m, note=f"{zero_fraction(m):.0%} zeros"))
    for mode in [x for x in a.int8.split(",") if x]:
        variants.append(Variant(f"int8-{mode}", teacher, int8=mode))
    cap = cpu_capability()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(
            variants,
            tmp,
            rounds=rounds,
            throughput_rounds=big_rounds,
            fid_n=fid_n,
            log=lambda m: print(m, file=sys.stderr),
        )
    print(f"CPU: {capability_line(cap)}; {a.threads} thread(s), torch {torch.__version__}")
    print(table(rows))
    command = "python bench/compress.py " + " ".join(sys.argv[1:])
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": command,
        "cpu": cap,
        "cpu_line": capability_line(cap),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": a.threads,
        "rounds": rounds,
        "fid_n": fid_n,
        "teacher": a.teacher,
        "students": [str(s) for s in students],
        "seconds": round(time.time() - t0, 1),
        "rows": [r.as_dict() for r in rows],
    }
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
