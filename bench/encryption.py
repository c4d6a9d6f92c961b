"""The cost of encryption at rest, plain and encrypted interleaved in one run:

1. writing and reading the default GAN's training checkpoint (networks, optimisers, random
   state), and what that adds to a run that checkpoints every 5 minutes (the engine's default);
2. whole training runs of the preset on Fashion-MNIST that write everything often (a stats
   record every step, a grid and a checkpoint every --every steps), encrypted (checkpoints,
   grids, stats, plots, report) against plain;
3. reading a folder data set of PNGs encrypted (`pixelsmith keys encrypt`) against plain.

    python bench/encryption.py [--rounds 20] [--preset dcgan] [--run-steps 200] [--runs 3]
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

from pixelsmith.data.sources import load_images  # noqa: E402
from pixelsmith.imageio import save_images  # noqa: E402
from pixelsmith.train import checkpoint as tck  # noqa: E402
from pixelsmith.train.config import build_config  # noqa: E402
from pixelsmith.train.loop import Trainer, train  # noqa: E402
from pixelsmith.utils import checkpoint_file as ckf  # noqa: E402
from pixelsmith.utils import encryption  # noqa: E402


def checkpoint_cost(preset: str, rounds: int, key: encryption.EncryptionKey, tmp: Path) -> None:
    """Median save and load times of one training checkpoint, plain and encrypted."""
    cfg = build_config(preset, overrides=["train.steps=1"])
    trainer = Trainer(cfg, tmp / "runs")
    tensors, rest = tck.capture(trainer.family, trainer.rng, trainer.device)
    man = {**trainer.manifest(), "resume": rest}
    ops = ("save plain", "save encrypted", "load plain", "load encrypted")
    times: dict[str, list[float]] = {k: [] for k in ops}
    files = {"plain": tmp / "plain.safetensors", "encrypted": tmp / "enc.safetensors"}
    for _ in range(rounds):
        for kind, k in (("plain", None), ("encrypted", key)):
            t = time.perf_counter()
            ckf.save_checkpoint(files[kind], tensors, man, key=k)
            times[f"save {kind}"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ckf.load_checkpoint(files[kind])
            times[f"load {kind}"].append(time.perf_counter() - t)
    size = files["plain"].stat().st_size
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"1. {preset} training checkpoint: {size / 2**20:.2f} MB, {rounds} rounds, medians:")
    for op in ("save", "load"):
        a, b = med[f"{op} plain"], med[f"{op} encrypted"]
        print(f"  {op}: plain {a:.1f} ms, encrypted {b:.1f} ms (x{b / a:.2f}, +{b - a:.1f} ms)")
    extra = med["save encrypted"] - med["save plain"]
    print(f"  a run checkpointing every 5 minutes spends {extra / 3000:.4f}% more time saving")


def run_cost(preset: str, steps: int, every: int, runs: int, key_file: Path, tmp: Path) -> None:
    """Wall time of whole training runs, plain and encrypted, interleaved."""
    overrides = [f"train.steps={steps}", "train.log_every=1", f"train.sample_every={every}",
                 f"train.checkpoint_every={every}", "data.source=fashion-mnist",
                 "train.eval_at_end=false"]  # fmt: skip
    times: dict[str, list[float]] = {"plain": [], "encrypted": []}
    for i in range(runs + 1):  # the first pair warms the caches and is not counted
        for kind in ("plain", "encrypted"):
            if kind == "encrypted":
                os.environ[encryption.ENV] = str(key_file)
            else:
                os.environ.pop(encryption.ENV, None)
            t = time.perf_counter()
            train(build_config(preset, overrides=overrides), tmp / kind, progress=False)
            if i:
                times[kind].append(time.perf_counter() - t)
    os.environ[encryption.ENV] = str(key_file)
    a, b = (statistics.median(times[k]) for k in ("plain", "encrypted"))
    print(f"2. {preset} runs of {steps} steps (a stats record every step, a grid and a checkpoint "
          f"every {every}), median of {runs}:")  # fmt: skip
    print(f"  plain {a:.2f} s, encrypted {b:.2f} s (x{b / a:.3f}, +{100 * (b / a - 1):.1f}%)")


def data_cost(n: int, rounds: int, key: encryption.EncryptionKey, tmp: Path) -> None:
    """Median time to load a folder of n PNGs, plain and encrypted."""
    images = load_images("fashion-mnist", split="test", limit=n).as_float()
    save_images(images, tmp / "data-plain")
    encryption.copy_tree(tmp / "data-plain", tmp / "data-secret", key, encrypting=True)
    times: dict[str, list[float]] = {"data-plain": [], "data-secret": []}
    for _ in range(rounds):
        for kind in times:
            t = time.perf_counter()
            load_images(str(tmp / kind))
            times[kind].append(time.perf_counter() - t)
    a, b = (statistics.median(times[k]) for k in times)
    print(f"3. loading a folder of {n} 28x28 PNGs, median of {rounds}:")
    print(f"  plain {a:.2f} s, encrypted {b:.2f} s (x{b / a:.3f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--preset", default="dcgan")
    p.add_argument("--run-steps", type=int, default=200)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--images", type=int, default=2000)
    args = p.parse_args()
    key = encryption.new_encryption_key()
    with tempfile.TemporaryDirectory() as tmp:
        # what every command does: the key file named in the environment, read at each load
        key_file = encryption.save_encryption_key(key, Path(tmp) / "bench.key")
        os.environ[encryption.ENV] = str(key_file)
        checkpoint_cost(args.preset, args.rounds, key, Path(tmp))
        run_cost(args.preset, args.run_steps, args.every, args.runs, key_file, Path(tmp))
        data_cost(args.images, 5, key, Path(tmp))


if __name__ == "__main__":
    main()
