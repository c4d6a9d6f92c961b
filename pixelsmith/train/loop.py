"""The training engine: one loop that every model family plugs into."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from pixelsmith import __version__
from pixelsmith import config as cfglib
from pixelsmith.data.augment import Augment
from pixelsmith.data.sources import ImageSet, load_images
from pixelsmith.errors import UserError
from pixelsmith.imageio import atomic_write_bytes, save_image
from pixelsmith.models import family_class
from pixelsmith.models.base import Family
from pixelsmith.train import checkpoint as ck
from pixelsmith.train.batches import Batches
from pixelsmith.train.config import RunConfig, config_from_dict
from pixelsmith.train.distributed import Dist, init_distributed
from pixelsmith.train.ema import ema_beta, update_ema
from pixelsmith.train.plot import plot_curves
from pixelsmith.train.progress import Progress, fmt_duration
from pixelsmith.train.rundir import new_run_dir
from pixelsmith.utils.rng import BatchRandom

DEFAULT_MINUTES = 10.0


@dataclass
class LoopState:
    """Counters that a checkpoint restores."""

    step: int = 0
    nimg: int = 0
    elapsed: float = 0.0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """auto -> this process's CUDA device when present, else CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={name} was asked for but no CUDA GPU is present; use cpu")
    return torch.device(name)


class Trainer:
    """Holds a run's family, data, randomness and counters; saves and restores all of them."""

    def __init__(
        self,
        cfg: RunConfig,
        out_root: str | Path = "runs",
        resume: str | Path | None = None,
        command: str | None = None,
        progress: bool = True,
    ):
        self.cfg = cfg
        tc = cfg.train
        if not (tc.steps or tc.epochs or tc.minutes):
            tc.minutes = DEFAULT_MINUTES
        self.dist: Dist = init_distributed(pick_device(tc.device))
        self.device = pick_device(tc.device, self.dist.local_rank)
        torch.set_num_threads(tc.threads or max(1, (os.cpu_count() or 1) // self.dist.local_world))
        self.command = command or " ".join(shlex.quote(a) for a in sys.argv)
        self.data: ImageSet = load_images(
            cfg.data.source,
            cfg.data.split,
            channels=cfg.data.channels,
            size=cfg.data.size,
            limit=cfg.data.limit,
            seed=tc.seed,
            domains=cfg.data.domains,
        )
        torch.manual_seed(tc.seed), np.random.seed(tc.seed % 2**32), random.seed(tc.seed)
        shape = tuple(self.data.images.shape[1:])
        fam = family_class(cfg.family)
        for key, (value, why) in fam.REQUIRED_DATA.items():
            if getattr(cfg.data, key) != value:
                raise UserError(f"{fam.name} needs data.{key}={str(value).lower()}: {why}")
        self.family: Family = fam(cfg.model, shape, len(self.data.classes)).to(self.device)
        if tc.channels_last:  # NHWC is faster for oneDNN's (and cuDNN's) convolutions
            for net in self.family.networks.values():
                net.to(memory_format=torch.channels_last)
        self.family.configure_optimizers()
        self.rng = BatchRandom(tc.seed + 1, self.dist.rank, self.dist.world, self.device)
        self.batches = Batches(
            self.data.images,
            self.data.labels,
            tc.batch,
            tc.seed,
            self.dist.rank,
            self.dist.world,
            self.device,
            balance=cfg.data.balance,
        )
        self.augment = Augment(cfg.data.augment) if cfg.data.augment.enabled else None
        self.eval_features = self._eval_features()
        self._eval_seconds = 0.0
        self._last_eval: tuple[int, list[Any]] | None = None
        self.state = LoopState()
        self.progress = Progress(enabled=progress and self.dist.is_main)
        self._stop_signal: str | None = None
        if resume is not None:
            self.run_dir = Path(resume)
            self.restore(ck.resolve_checkpoint(self.run_dir))
        else:
            name = None
            if self.dist.is_main:
                name = str(new_run_dir(out_root, cfg.preset, cfg.data.source))
            self.run_dir = Path(self.dist.broadcast(name))
        if self.dist.is_main:
            for sub in ("checkpoints", "grids"):
                (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
            text = yaml.safe_dump(cfglib.to_dict(cfg), sort_keys=False)
            atomic_write_bytes(self.run_dir / "config.yaml", text.encode())

    def _eval_features(self) -> str | None:
        """The feature network for in-training FID/KID, or None when there is none to use."""
        from pixelsmith.metrics.features import FOR_SOURCE

        tc = self.cfg.train
        feats = tc.eval_features
        if feats == "auto":
            feats = FOR_SOURCE.get(self.data.name)
        if feats is None and tc.eval_every:
            raise UserError(
                f"train.eval_every needs a feature network, and {self.data.name} has no shipped "
                "one: set train.eval_features=inception or a TorchScript file"
            )
        return feats

    # ---- budget -------------------------------------------------------------------------

    def fraction(self) -> float:
        """How much of the budget is spent, 0..1 (the first budget to run out wins)."""
        tc, parts = self.cfg.train, []
        if tc.steps:
            parts.append(self.state.step / tc.steps)
        if tc.epochs:
            # Whole batches: an epoch drops its last partial batch (balanced epochs are longer).
            per_epoch = self.batches.epoch_size // self.batches.global_batch
            parts.append(
                self.batches.consumed / self.batches.global_batch / (tc.epochs * per_epoch)
            )
        if tc.minutes:
            parts.append(self.state.elapsed / (tc.minutes * 60))
        return max(parts) if parts else 0.0

    # ---- one step -----------------------------------------------------------------------

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next real batch for this rank, augmented when the config asks for it."""
        x, y = self.batches.next()
        if self.augment is not None:
            x = self.augment(x, self.rng)
        return x, y

    def step(self) -> dict[str, float]:
        """One training step of the family plus the EMA update."""
        x, y = self.next_batch()
        logs = self.family.train_step(
            x, y, self.rng, self.state.step, self.next_batch, self.dist.sync_grads
        )
        self.state.step += 1
        self.state.nimg += self.cfg.train.batch
        tc = self.cfg.train
        beta = ema_beta(tc.batch, self.state.nimg, tc.ema_kimg, tc.ema_rampup)
        for src, dst in self.family.ema_pairs.items():
            update_ema(self.family.networks[dst], self.family.networks[src], beta)
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            raise UserError(
                f"training diverged at step {self.state.step} ({bad[0]} loss is {logs[bad[0]]}); "
                "lower the learning rates (e.g. --set model.lr_d=1e-4) and "
                f"--resume {self.run_dir} "
                "from its last checkpoint, or start again"
            )
        return logs

    # ---- the loop -----------------------------------------------------------------------

    def run(self) -> Path:
        """Train until the budget is spent or a signal arrives; returns the run folder."""
        tc = self.cfg.train
        self._install_signals()
        main = self.dist.is_main
        if main:
            print(f"run folder: {self.run_dir}", file=sys.stderr)
            self._note_data()
        t0, elapsed0, frac0 = time.monotonic(), self.state.elapsed, self.fraction()
        self._eval_seconds = 0.0
        # Rates count the real images read (a WGAN-GP step reads n_critic batches); `nimg`, the
        # schedule's clock for EMA and kimg, counts one batch per step.
        read0 = self.batches.consumed
        last_log = (time.monotonic(), read0)
        last_ckpt = time.monotonic()
        acc: dict[str, list[float]] = {}
        try:
            while True:
                # Time spent evaluating is not training time: it does not eat the budget.
                self.state.elapsed = elapsed0 + time.monotonic() - t0 - self._eval_seconds
                stop = self.fraction() >= 1.0 or self._stop_signal is not None
                if self.dist.any(stop):
                    break
                logs = self.step()
                for k, v in logs.items():
                    acc.setdefault(k, []).append(v)
                s = self.state.step
                if s % tc.log_every == 0:
                    now = time.monotonic()
                    rate = (self.batches.consumed - last_log[1]) / max(now - last_log[0], 1e-9)
                    last_log = (now, self.batches.consumed)
                    if main:
                        self._log_stats({k: float(np.mean(v)) for k, v in acc.items()}, rate)
                    acc = {}
                if main and s % tc.sample_every == 0:
                    self.save_grid(f"grid-{s:06d}.png")
                if main and tc.eval_every and s % tc.eval_every == 0:
                    self.progress.close()
                    self.evaluate()
                if main and (
                    s % tc.checkpoint_every == 0
                    or time.monotonic() - last_ckpt > tc.checkpoint_minutes * 60
                ):
                    self.save()
                    last_ckpt = time.monotonic()
                if main:
                    frac = self.fraction()
                    spent = time.monotonic() - t0
                    eta = (
                        spent / (frac - frac0) * (1 - frac) if frac > frac0 and spent > 5 else None
                    )
                    rate = (self.batches.consumed - read0) / max(spent, 1e-9)
                    self.progress.update(s, min(frac, 1.0), rate, eta, logs)
        finally:
            self.progress.close()
            self._restore_signals()
        self.state.elapsed = elapsed0 + time.monotonic() - t0 - self._eval_seconds
        final = None
        if main:
            self.save()
            self.save_grid("grid-final.png")
            if self.cfg.train.eval_at_end and self.eval_features and self._stop_signal is None:
                done = self._last_eval and self._last_eval[0] == self.state.step
                final = self._last_eval[1] if done else self.evaluate()
            self.write_report(final)
            self._summary(final)
        self.dist.barrier()
        return self.run_dir

    # ---- evaluation ---------------------------------------------------------------------

    def evaluate(self) -> list[Any]:
        """FID/KID of the EMA model now: into stats.jsonl and the run's manifest."""
        from pixelsmith.metrics.evaluate import evaluate_model, stderr_log, store_scores

        tc, t0 = self.cfg.train, time.monotonic()
        nets = self.family.networks
        modes = {k: net.training for k, net in nets.items()}
        with torch.random.fork_rng(devices=[]):
            try:
                scores = evaluate_model(
                    self.family.eval(),
                    tc.eval_metrics,
                    n=tc.eval_n,
                    features=self.eval_features,
                    reference=f"{self.cfg.data.source}:test",
                    seed=tc.seed,
                    log=stderr_log if self.progress.enabled else None,
                )
            finally:
                for k, net in nets.items():
                    net.train(modes[k])
        rec = {
            "step": self.state.step,
            "kimg": round(self.state.nimg / 1000, 3),
            "time_s": round(self.state.elapsed, 2),
            **{f"eval/{sc.card.metric}": round(sc.value, 5) for sc in scores},
            "eval_n": tc.eval_n,
        }
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        store_scores(self.run_dir, scores, step=self.state.step)
        self._eval_seconds += time.monotonic() - t0
        self._last_eval = (self.state.step, scores)
        print(
            f"step {self.state.step}: "
            + ", ".join(f"{sc.card.metric} {sc.value:.4g}" for sc in scores)
            + f" (n={tc.eval_n}, {self.eval_features} features)",
            file=sys.stderr,
        )
        return scores

    # ---- signals ------------------------------------------------------------------------

    def _install_signals(self) -> None:
        def handler(signum, frame):  # noqa: ARG001
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name
            print(
                f"\n{self._stop_signal}: saving a checkpoint and stopping (again to abort)",
                file=sys.stderr,
            )

        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in self._old:
                signal.signal(s, handler)
        except ValueError:
            self._old = {}

    def _restore_signals(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    # ---- outputs ------------------------------------------------------------------------

    def _note_data(self) -> None:
        d = self.data
        msg = f"data: {d.name} ({d.split}), {len(d)} images of {tuple(d.images.shape[1:])}"
        if d.classes:
            msg += f", {len(d.classes)} classes"
        if d.note:
            msg += f" - {d.note}"
        print(msg, file=sys.stderr)
        if d.skipped:
            print(
                f"warning: {len(d.skipped)} unreadable files were skipped, e.g. "
                f"{d.skipped[0][0]} ({d.skipped[0][1]})",
                file=sys.stderr,
            )

    def _log_stats(self, losses: dict[str, float], rate: float) -> None:
        rec = {
            "step": self.state.step,
            "kimg": round(self.state.nimg / 1000, 3),
            "time_s": round(self.state.elapsed, 2),
            "img_per_s": round(rate, 1),
            "epoch": self.batches.epoch,
            **{k: round(v, 5) for k, v in losses.items()},
        }
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    def read_stats(self) -> list[dict[str, Any]]:
        path = self.run_dir / "stats.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def save_grid(self, name: str) -> Path:
        tc = self.cfg.train
        imgs = self.family.sample(tc.grid_size, seed=tc.grid_seed)
        nrow = self.family.classes if getattr(self.family, "classes", 0) else None
        return save_image(imgs, self.run_dir / "grids" / name, nrow=nrow)

    def plot(self) -> None:
        stats = self.read_stats()
        skip = {"step", "kimg", "time_s", "img_per_s", "epoch", "eval_n"}
        keys = list(dict.fromkeys(k for r in stats for k in r if k not in skip))
        losses = [k for k in keys if not k.startswith("eval/")]
        series = {k: [(r["step"], r[k]) for r in stats if k in r] for k in losses}
        plot_curves(series, self.run_dir / "losses.png", title=f"{self.cfg.preset} losses")
        evals = {k: [(r["step"], r[k]) for r in stats if k in r] for k in keys if k not in losses}
        if any(len(v) > 1 for v in evals.values()):
            plot_curves(evals, self.run_dir / "eval.png", title=f"{self.cfg.preset} FID/KID")

    def manifest(self) -> dict[str, Any]:
        d = self.data
        return {
            "pixelsmith_version": __version__,
            "torch_version": torch.__version__,
            "family": self.cfg.family,
            "preset": self.cfg.preset,
            "config": cfglib.to_dict(self.cfg),
            "image_shape": list(d.images.shape[1:]),
            "num_classes": len(d.classes),
            "classes": list(d.classes),
            "data": {
                "name": d.name,
                "split": d.split,
                "fingerprint": d.fingerprint,
                "images": len(d),
                "note": d.note,
            },
            "command": self.command,
            "world_size": self.dist.world,
            "step": self.state.step,
            "nimg": self.state.nimg,
            "elapsed_s": self.state.elapsed,
            "batches": self.batches.state(),
            "metrics": {},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def save(self) -> Path:
        """Write a checkpoint of everything needed to resume exactly, and refresh the plot."""
        tensors: dict[str, torch.Tensor] = {}
        for name, net in self.family.networks.items():
            for k, v in net.state_dict().items():
                tensors[f"net/{name}/{k}"] = v
        opt_rest = {}
        for name, opt in self.family.optimizers.items():
            t, rest = ck.optimizer_to_flat(opt, f"opt/{name}")
            tensors.update(t)
            opt_rest[name] = rest
        tensors["rng/torch"] = torch.get_rng_state()
        tensors["rng/batch"] = self.rng.get_state()
        np_state = np.random.get_state()
        tensors["rng/numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
        if torch.cuda.is_available() and self.device.type == "cuda":
            tensors["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        man = self.manifest()
        man["resume"] = {
            "optimizers": opt_rest,
            "numpy_rng": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python_rng": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        }
        path = ck.save_checkpoint(
            self.run_dir / "checkpoints" / f"ckpt-{self.state.step:06d}.safetensors", tensors, man
        )
        ck.prune(self.run_dir / "checkpoints", self.cfg.train.keep)
        public = {k: v for k, v in man.items() if k != "resume"}
        public["checkpoint"] = str(path)
        old = self.run_dir / "manifest.json"
        if old.exists():  # scores added by evaluations stay with the run
            with contextlib.suppress(ValueError, OSError):
                public["scores"] = json.loads(old.read_text()).get("scores", [])
        atomic_write_bytes(self.run_dir / "manifest.json", json.dumps(public, indent=2).encode())
        self.plot()
        return path

    def restore(self, path: Path) -> None:
        """Load a checkpoint written by save() into this trainer."""
        tensors, man = ck.load_checkpoint(path)
        if man.get("family") != self.cfg.family:
            raise UserError(
                f"{path} holds a {man.get('family')} model, not {self.cfg.family}; "
                "resume it with its own model"
            )
        if man["data"]["fingerprint"] != self.data.fingerprint:
            raise UserError(
                f"the data of {man['data']['name']} changed since {path} was written; "
                "resume with the same data, or start a new run"
            )
        ck.load_networks(self.family.networks, tensors)
        res = man["resume"]
        for name, opt in self.family.optimizers.items():
            ck.optimizer_from_flat(opt, tensors, f"opt/{name}", res["optimizers"][name])
        torch.set_rng_state(tensors["rng/torch"])
        self.rng.set_state(tensors["rng/batch"])
        a, pos, has_g, cached = res["numpy_rng"]
        np.random.set_state((a, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_g, cached))
        v, st, g = res["python_rng"]
        random.setstate((v, tuple(st), g))
        if "rng/cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng/cuda"], self.device)
        self.batches.load_state(man["batches"])
        self.state = LoopState(step=man["step"], nimg=man["nimg"], elapsed=man["elapsed_s"])
        if self.dist.is_main:
            stats = self.run_dir / "stats.jsonl"
            if stats.exists():  # drop records logged after this checkpoint
                keep = [
                    ln
                    for ln in stats.read_text().splitlines()
                    if ln.strip() and json.loads(ln)["step"] <= self.state.step
                ]
                atomic_write_bytes(stats, ("\n".join(keep) + "\n" if keep else "").encode())
            print(f"resumed {path} at step {self.state.step}", file=sys.stderr)

    def write_report(self, scores: list[Any] | None = None) -> None:
        stats = self.read_stats()
        rates = [r["img_per_s"] for r in stats if "img_per_s" in r]
        rate = rates[-1] if rates else float("nan")
        lines = [
            f"# {self.run_dir.name}",
            "",
            f"- model: {self.cfg.preset} (family {self.cfg.family}), "
            f"parameters: {self.family.describe()}",
            f"- data: {self.data.name} ({self.data.split}), {len(self.data)} images, "
            f"fingerprint {self.data.fingerprint}",
            f"- steps: {self.state.step}, real images read: {self.batches.consumed}, "
            f"time: {fmt_duration(self.state.elapsed)}, last rate: {rate} img/s, "
            f"processes: {self.dist.world}",
            f"- command: `{self.command}`",
            *(f"- {sc} — card: {sc.card.describe()}" for sc in scores or []),
            "",
            "![samples](grids/grid-final.png)",
            "",
            "![losses](losses.png)",
            "",
        ]
        atomic_write_bytes(self.run_dir / "report.md", "\n".join(lines).encode())

    def _summary(self, scores: list[Any] | None = None) -> None:
        ckpts = ck.list_checkpoints(self.run_dir / "checkpoints")
        why = f" (stopped by {self._stop_signal})" if self._stop_signal else ""
        print(
            f"done{why}: {self.state.step} steps, {self.batches.consumed} real images read in "
            f"{fmt_duration(self.state.elapsed)}\n"
            f"  samples:    {self.run_dir / 'grids' / 'grid-final.png'}\n"
            f"  stats:      {self.run_dir / 'stats.jsonl'} (plot: {self.run_dir / 'losses.png'})\n"
            f"  checkpoint: {ckpts[-1] if ckpts else '-'}\n"
            + "".join(f"  {sc}\n" for sc in scores or [])
            + f"  resume:     pixelsmith train {self.cfg.preset} --resume {self.run_dir}",
            file=sys.stderr,
        )


def train(
    cfg: RunConfig,
    out_root: str | Path = "runs",
    resume: str | Path | None = None,
    command: str | None = None,
    progress: bool = True,
) -> Path:
    """Train a model as configured; returns the run folder."""
    trainer = Trainer(cfg, out_root, resume, command, progress)
    try:
        return trainer.run()
    finally:
        trainer.dist.close()


def run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config of an existing run folder (from its newest checkpoint)."""
    man = ck.read_manifest(ck.resolve_checkpoint(run_dir))
    return config_from_dict(man["config"])
