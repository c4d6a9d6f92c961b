"""The cost of encryption at rest: writing and reading the default GAN's training checkpoint
(networks, optimisers, random state) plain and encrypted, interleaved in one run, and what that
adds to a run that checkpoints every 5 minutes (the engine's default).

    python bench/encryption.py [--rounds 20] [--preset dcgan]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelsmith.train import checkpoint as tck  # noqa: E402
from pixelsmith.train.config import build_config  # noqa: E402
from pixelsmith.train.loop import Trainer  # noqa: E402
from pixelsmith.utils import checkpoint_file as ckf  # noqa: E402
from pixelsmith.utils import encryption  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--preset", default="dcgan")
    args = p.parse_args()
    key = encryption.new_encryption_key()
    with tempfile.TemporaryDirectory() as tmp:
        # what every command does: the key file named in the environment, read at each load
        os.environ[encryption.ENV] = str(
            encryption.save_encryption_key(key, Path(tmp) / "bench.key")
        )
        cfg = build_config(args.preset, overrides=["train.steps=1"])
        trainer = Trainer(cfg, Path(tmp) / "runs")
        tensors, rest = tck.capture(trainer.family, trainer.rng, trainer.device)
        man = {**trainer.manifest(), "resume": rest}
        ops = ("save plain", "save encrypted", "load plain", "load encrypted")
        times: dict[str, list[float]] = {k: [] for k in ops}
        files = {
            "plain": Path(tmp) / "plain.safetensors",
            "encrypted": Path(tmp) / "enc.safetensors",
        }
        for _ in range(args.rounds):
            for kind, k in (("plain", None), ("encrypted", key)):
                t = time.perf_counter()
                ckf.save_checkpoint(files[kind], tensors, man, key=k)
                times[f"save {kind}"].append(time.perf_counter() - t)
                t = time.perf_counter()
                ckf.load_checkpoint(files[kind])
                times[f"load {kind}"].append(time.perf_counter() - t)
        size = files["plain"].stat().st_size
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"{args.preset} training checkpoint: {size / 2**20:.2f} MB, {args.rounds} rounds, "
          "medians:")  # fmt: skip
    for op in ("save", "load"):
        a, b = med[f"{op} plain"], med[f"{op} encrypted"]
        print(f"  {op}: plain {a:.1f} ms, encrypted {b:.1f} ms (x{b / a:.2f}, +{b - a:.1f} ms)")
    extra = med["save encrypted"] - med["save plain"]
    print(f"  a run checkpointing every 5 minutes spends {extra / 3000:.4f}% more time saving")


if __name__ == "__main__":
    main()
