"""The training engine: one loop that every model family plugs into.

`Trainer.run` is the algorithm: until the budget is spent or a signal arrives, take a batch,
let the family take its step, update the moving averages, and let the hooks (train/hooks.py) do
their periodic work. Setting up (data, model, randomness, run folder) is `Trainer.__init__`;
what a checkpoint holds is train/checkpoint.py's; what the run folder holds is train/rundir.py's.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelsmith import config as cfglib
from pixelsmith.data.augment import Augment
from pixelsmith.data.sources import ImageSet, load_images
from pixelsmith.errors import UserError, warn
from pixelsmith.imageio import make_grid, png_bytes, view_scale
from pixelsmith.metrics.cards import privacy_line
from pixelsmith.models import family_class
from pixelsmith.models.base import Batch, Family, StepContext
from pixelsmith.train import checkpoint as tck
from pixelsmith.train import events, privacy
from pixelsmith.train.batches import Batches, PoissonBatches
from pixelsmith.train.config import RunConfig, config_from_dict
from pixelsmith.train.distributed import Dist, init_distributed
from pixelsmith.train.ema import ema_beta, update_ema
from pixelsmith.train.hooks import default_hooks
from pixelsmith.train.privacy import PrivateRelease, PrivateTraining
from pixelsmith.train.progress import Progress, fmt_duration
from pixelsmith.train.rundir import RunFolder, new_run_dir
from pixelsmith.train.schedule import apply_factor, base_rates, lr_factor
from pixelsmith.train.schedule import describe as describe_schedule
from pixelsmith.train.transfer import describe_init
from pixelsmith.train.transfer import setup as transfer_setup
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.utils import encryption
from pixelsmith.utils.rng import BatchRandom
from pixelsmith.version import __version__


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """auto -> this process's CUDA device when present, else CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={name} was asked for but no CUDA GPU is present; use cpu")
    return torch.device(name)


def pick_precision(name: str, device: torch.device) -> str:
    """auto -> bf16 where the device multiplies bfloat16 in hardware (a CPU with AMX, a GPU
    with bf16), else fp32; fp32 and bf16 as they are."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # a private helper: may go
    return "bf16" if amx is not None and amx() else "fp32"


def default_threads(local_world: int) -> int:
    """A run's threads when train.threads is unset: OMP_NUM_THREADS when the user set it for a
    single process (two runs side by side each taking every core thrash: 20x slower seen on 2
    cores), else the cores shared among this machine's processes (torchrun sets OMP_NUM_THREADS=1
    for its own reasons, so it is not read there)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if local_world == 1 and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) // local_world)


class Trainer:
    """A run's family, data, randomness, counters and folder, and the loop that trains it.

    Everything a user can get wrong (data, sizes, settings the model or its evaluation cannot
    honour) is checked here, before the run folder is made.
    """

    def __init__(
        self,
        cfg: RunConfig,
        out_root: str | Path = "runs",
        resume: str | Path | None = None,
        command: str | None = None,
        progress: bool = True,
        data: ImageSet | None = None,
    ):
        """`data` trains on these images instead of loading cfg.data (LiRA's shadows)."""
        self.cfg = cfg
        tc = cfg.train
        self.dist: Dist = init_distributed(pick_device(tc.device))
        self.device = pick_device(tc.device, self.dist.local_rank)
        self.precision = pick_precision(tc.precision, self.device)
        if cfg.privacy.enabled and tc.precision == "auto":  # see _private_training
            self.precision = "fp32"
        torch.set_num_threads(tc.threads or default_threads(self.dist.local_world))
        self.command = command or " ".join(shlex.quote(a) for a in sys.argv)
        fam = family_class(cfg.family)
        for key, (value, why) in fam.REQUIRED_DATA.items():
            if getattr(cfg.data, key) != value:
                raise UserError(f"{fam.name} needs data.{key}={str(value).lower()}: {why}")
        self.data = data if data is not None else self._load_data(fam)
        torch.manual_seed(tc.seed), np.random.seed(tc.seed % 2**32), random.seed(tc.seed)
        shape = tuple(self.data.images.shape[1:])
        self.family: Family = fam(cfg.model, shape, len(self.data.classes))
        self.family.sample_defaults = self.family.sample_options(cfg.sample)
        self.family.add_ema_copies()
        self.family.to(self.device)
        if tc.channels_last:  # NHWC is faster for oneDNN's (and cuDNN's) convolutions
            for net in self.family.networks.values():
                net.to(memory_format=torch.channels_last)
        # --init (a fresh run only: a resume restores its checkpoint) and FreezeD, before the
        # optimisers are made; the init's source and counts go into the manifest.
        log = (lambda m: print(m, file=sys.stderr)) if self.dist.is_main else None
        self.init_record = transfer_setup(self.family, tc.init, tc.freeze_d, resume is None, log)
        self.family.configure_optimizers()
        self.base_lrs = base_rates(self.family.optimizers)
        self.eval_plan = self._plan_evaluation()
        self.rng = BatchRandom(tc.seed + 1, self.dist.rank, self.dist.world, self.device)
        self.private = self._private_training() if cfg.privacy.enabled else None
        fit_s = time.monotonic()
        if resume is None:  # a resume restores what the family fitted
            self.family.fit_data(self.data.images, tc.seed)
        fit_s = time.monotonic() - fit_s
        self.dp_sgd = isinstance(self.private, PrivateTraining)
        self.schedule = describe_schedule(
            tc.lr_schedule, tc.warmup, tc.lr_floor, tc.lr_milestones, tc.lr_gamma
        )
        if self.family.abilities.releases and resume is None:  # a resume has it in its checkpoint
            self._release()
        if self.dp_sgd:
            self.batches = PoissonBatches(
                self.data.images, self.data.labels, tc.batch, tc.seed, self.device
            )
        else:
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
        # fitting to the data (k-means clusters) is training: it counts against train.minutes
        self.state = tck.LoopState(elapsed=fit_s)
        self.saved_step = -1
        self._last_eval: tuple[int, list[Any]] | None = None
        self._paused = 0.0
        self.progress = Progress(enabled=progress and self.dist.is_main)
        self._stop_signal: str | None = None
        if resume is not None:
            self.folder = RunFolder(resume, encryption.active_key())
            self.restore(ckf.resolve_checkpoint(self.folder.path))
        else:
            name = None
            if self.dist.is_main:
                name = str(new_run_dir(out_root, cfg.preset, cfg.data.source))
            self.folder = RunFolder(self.dist.broadcast(name), encryption.active_key())
        self.run_dir = self.folder.path
        if self.dist.is_main:
            self.folder.prepare(cfg)
            if tc.tensorboard and self.folder.key is None and events.available():
                start = self.state.step if resume is not None else None
                self.folder.events = events.EventLog(self.run_dir, purge_step=start)

    def _load_data(self, fam: type[Family]) -> ImageSet:
        """The training images; a folder with no data.size gets a size that fits the model."""
        d = self.cfg.data
        if d.size is None and not d.patches and d.source != "photos":
            from pixelsmith.data.sources import folder_default_size

            size, note = folder_default_size(d.source, d.split)
            if size is not None:
                d.size = size[0]
                if self.dist.is_main:
                    print(f"data: {note}", file=sys.stderr)
        if d.size is not None:
            fam.check_shape((1, d.size, d.size))
        return load_images(
            d.source,
            d.split,
            channels=d.channels,
            size=d.size,
            limit=d.limit,
            seed=self.cfg.train.seed,
            domains=d.domains,
            patches=d.patches,
        )

    def _release(self) -> None:
        """The statistic a releasing family learns from, noised by the run's privacy if any."""
        rel = self.private
        noise, normal = (rel.noise, rel.normal) if isinstance(rel, PrivateRelease) else (0.0, None)
        self.family.release(self.data.images, self.data.labels, noise, normal)
        if isinstance(rel, PrivateRelease):
            rel.spend()

    def _private_training(self) -> PrivateTraining | PrivateRelease:
        """DP-SGD's hooks, optimisers and accountant (or a releasing family's one release), after
        refusing what breaks the accounting."""
        cfg, n = self.cfg, len(self.data)
        releases = self.family.abilities.releases
        mixes = {
            "data.balance": (
                cfg.data.balance and not releases,
                "balanced batches are not Poisson samples",
            ),
            "data.patches": (
                cfg.data.patches,
                "several crops of one image are several examples, so the guarantee would cover "
                "a crop, not an image",
            ),
            "more than one process": (self.dist.world > 1, "private runs train in one process"),
            "train.precision=bf16": (
                self.precision == "bf16" and not releases,
                "the guarantee rests on per-sample clipping, which is built and tested in "
                "float32 only",
            ),
        }
        for what, (on, why) in mixes.items():
            if on:
                raise UserError(f"private training (privacy.*) cannot run with {what}: {why}")
        if releases:
            return PrivateRelease(cfg.privacy, n, cfg.train.seed)
        rate = cfg.train.batch / n
        if self.family.private_examples > 1 and (1 - rate) ** n > 1e-12:
            # A step that draws no real image still scores the fixed count of fakes: the
            # accounting covers such steps only as a failure probability, kept below 1e-12.
            raise UserError(
                f"train.batch={cfg.train.batch} is too small for a private {self.family.name}: "
                f"a Poisson batch would draw no real image with probability "
                f"{(1 - rate) ** n:.1g} a step; use train.batch=32 or more"
            )
        steps = privacy.step_budget(cfg.train.steps, cfg.train.epochs, rate)
        return PrivateTraining(cfg.privacy, self.family, n, cfg.train.batch, steps, cfg.train.seed)

    def _plan_evaluation(self) -> Any:
        """What the run scores (periodically and at the end), refused now if it cannot be."""
        from pixelsmith.metrics.evaluate import plan

        tc = self.cfg.train
        if not (tc.eval_every or tc.eval_at_end):
            return None
        asked = tc.eval_every or tc.eval_metrics != "auto" or tc.eval_features != "auto"
        try:
            return plan(self.family, tc.eval_metrics, tc.eval_features, data=self._data_settings())
        except UserError as e:
            if asked:
                raise UserError(f"the run's evaluation (train.eval_*) cannot work: {e}") from None
            return None  # no metric fits this data by default: the run ends without scores

    def _data_settings(self) -> dict[str, Any]:
        return cfglib.to_dict(self.cfg.data)

    # ---- budget -------------------------------------------------------------------------

    def fraction(self) -> float:
        """How much of the budget is spent, 0..1 (the first budget to run out wins)."""
        tc, parts = self.cfg.train, []
        if tc.steps:
            parts.append(self.state.step / tc.steps)
        if tc.epochs:
            # Whole batches: an epoch drops its last partial batch (balanced epochs are longer).
            parts.append(self.batches.drawn / (tc.epochs * self.batches.per_epoch))
        if tc.minutes:
            parts.append(self.state.elapsed / (tc.minutes * 60))
        return max(parts) if parts else 0.0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside does not count against the budget (evaluation)."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            self._paused += time.monotonic() - t0

    # ---- the algorithm ------------------------------------------------------------------

    def next_batch(self) -> Batch:
        """The next batch for this process: augmented, then prepared by the family."""
        x, y = self.batches.next()
        if not len(x) and self.private is not None:
            return Batch(x, y)
        if self.augment is not None:
            x = self.augment(x, self.rng)
        return self.family.prepare_batch(Batch(x, y), self.rng)

    def step(self) -> dict[str, float]:
        """One training step of the family, then the moving averages."""
        ctx = StepContext(
            self.rng,
            self.state.step,
            self.next_batch,
            self.dist.sync_grads,
            private_batch=self.cfg.train.batch if self.dp_sgd else None,
            **({"freeze": self.private.freeze} if self.dp_sgd else {}),
        )
        batch = self.next_batch()
        tc = self.cfg.train
        if self.schedule:
            factor = lr_factor(self.fraction(), tc.lr_schedule, tc.warmup, tc.lr_floor,
                               tc.lr_milestones, tc.lr_gamma)  # fmt: skip
            apply_factor(self.family.optimizers, self.base_lrs, factor)
        if len(batch.images):
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
                logs = self.family.train_step(batch, ctx)
        else:  # a Poisson batch that drew no image
            self.private.empty_step()
            logs = {}
        if self.schedule:
            logs = {**logs, "lr_factor": factor}
        self.state.step += 1
        # `nimg`, the clock of the EMA schedule and kimg, counts one batch per step.
        self.state.nimg += self.cfg.train.batch
        beta = ema_beta(tc.batch, self.state.nimg, tc.ema_kimg, tc.ema_rampup)
        for src, dst in self.family.ema_pairs.items():
            update_ema(self.family.networks[dst], self.family.networks[src], beta)
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            raise UserError(self.divergence(bad[0], logs[bad[0]]))
        return logs

    def divergence(self, key: str, value: float) -> str:
        """What to do when a loss is no longer finite, naming settings this family has."""
        keys = self.family.tuning_keys()
        lower = " and ".join(keys) if keys else "the learning rates"
        example = f" (e.g. --set {keys[0]}={getattr(self.cfg.model, keys[0][6:]) / 4:g})"
        return (
            f"training diverged at step {self.state.step} ({key} loss is {value}); lower "
            f"{lower}{example if keys else ''} and --resume {self.run_dir} from its last "
            "checkpoint, or start again"
        )

    def run(self) -> Path:
        """Train until the budget is spent or a signal arrives; returns the run folder."""
        main = self.dist.is_main
        if main:
            print(f"run folder: {self.run_dir}", file=sys.stderr)
            self._note_data()
        hooks = default_hooks(self) if main else []
        t0, elapsed0, self._paused = time.monotonic(), self.state.elapsed, 0.0
        with self._signals():
            try:
                while True:
                    self.state.elapsed = elapsed0 + time.monotonic() - t0 - self._paused
                    # The main process's clock decides: it alone pauses it to evaluate.
                    spent = main and self.fraction() >= 1.0
                    if self.dist.any(spent or self._stop_signal is not None):
                        break
                    logs = self.step()
                    for hook in hooks:
                        hook.after_step(self, logs)
            finally:
                self.progress.close()
        self.state.elapsed = elapsed0 + time.monotonic() - t0 - self._paused
        if main:
            self.finish()
        self.dist.barrier()
        return self.run_dir

    def finish(self) -> None:
        """The last checkpoint and grid, the final evaluation, the report and the summary."""
        self.save()
        self.save_grid("grid-final.png")
        final = None
        if self.cfg.train.eval_at_end and self.eval_plan and self._stop_signal is None:
            if self._last_eval and self._last_eval[0] == self.state.step:
                final = self._last_eval[1]
            else:
                try:
                    final = self.evaluate()
                except Exception as e:  # noqa: BLE001 - the run is saved; say what failed
                    warn(f"the final evaluation failed ({type(e).__name__}: {e})")
        self.write_report(final)
        if self.folder.events is not None:
            self.folder.events.close()
        self._summary(final)

    # ---- evaluation ---------------------------------------------------------------------

    def evaluate(self) -> list[Any]:
        """The run's scores of the EMA model now: into stats.jsonl and the run's manifest."""
        from pixelsmith.metrics.evaluate import evaluate_model, stderr_log, store_scores

        tc, nets = self.cfg.train, self.family.networks
        if self.private is not None:  # the cards carry the budget spent so far
            self.family.manifest["privacy"] = self.private.record()
        if self.schedule:
            self.family.manifest["lr_schedule"] = self.schedule
        modes = {k: net.training for k, net in nets.items()}
        with self.paused(), torch.random.fork_rng(devices=[]):
            try:
                scores = evaluate_model(
                    self.family.eval(),
                    tc.eval_metrics,
                    n=tc.eval_n,
                    features=tc.eval_features,
                    seed=tc.seed,
                    log=stderr_log if self.progress.enabled else None,
                    data=self._data_settings(),
                )
            finally:
                for k, net in nets.items():
                    net.train(modes[k])
            self.folder.append_stats(
                {
                    "step": self.state.step,
                    "kimg": round(self.state.nimg / 1000, 3),
                    "time_s": round(self.state.elapsed, 2),
                    **{f"eval/{sc.card.metric}": round(sc.value, 5) for sc in scores},
                    "eval_n": tc.eval_n,
                }
            )
            store_scores(self.run_dir, scores, step=self.state.step)
        self._last_eval = (self.state.step, scores)
        print(
            f"step {self.state.step}: "
            + ", ".join(f"{sc.card.metric} {sc.value:.4g}" for sc in scores)
            + f" ({scores[0].card.features} features, n={scores[0].card.n})",
            file=sys.stderr,
        )
        return scores

    # ---- signals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """Ctrl-C or SIGTERM: finish the step, save and stop; a second one aborts."""

        def handler(signum, frame):  # noqa: ARG001
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name
            print(
                f"\n{self._stop_signal}: saving a checkpoint and stopping (again to abort)",
                file=sys.stderr,
            )

        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in old:
                signal.signal(s, handler)
        except ValueError:  # not the main thread: no signal handling
            old = {}
        try:
            yield
        finally:
            for s, h in old.items():
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

    def log_stats(self, losses: dict[str, float], rate: float) -> None:
        """One stats.jsonl record: counters, rate and mean losses."""
        self.folder.append_stats(
            {
                "step": self.state.step,
                "kimg": round(self.state.nimg / 1000, 3),
                "time_s": round(self.state.elapsed, 2),
                "img_per_s": round(rate, 1),
                "epoch": self.batches.epoch,
                **{k: round(v, 5) for k, v in losses.items()},
            }
        )

    def save_grid(self, name: str) -> Path:
        """A fixed-seed grid of the EMA model (a conditional model's classes in columns),
        enlarged for looking at when the images are small."""
        tc = self.cfg.train
        if self.family.abilities.restores:  # rows of (degraded, restored, clean) images
            clean = self.data.images[: min(8, len(self.data))].float() / 255
            images, nrow = self.family.preview(clean, seed=tc.grid_seed), 3
        else:
            images = self.family.sample(tc.grid_size, seed=tc.grid_seed)
            nrow = self.family.classes or None
        grid = make_grid(images, nrow=nrow)
        png = png_bytes(grid, scale=view_scale(*images.shape[-2:]))
        if self.folder.events is not None:
            self.folder.events.grid("samples", grid, self.state.step)
        return encryption.write_file(self.folder.grids / name, png, self.folder.key)

    def manifest(self) -> dict[str, Any]:
        """What a checkpoint says about itself (the public part of its manifest)."""
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
            "precision": self.precision,
            "step": self.state.step,
            "nimg": self.state.nimg,
            "elapsed_s": self.state.elapsed,
            "batches": self.batches.state(),
            **({"init": self.init_record} if self.init_record else {}),
            **({"privacy": self.private.record()} if self.private else {}),
            **({"lr_schedule": self.schedule} if self.schedule else {}),
            "metrics": {},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def save(self) -> Path:
        """Write a checkpoint of everything needed to resume exactly, and refresh the plot."""
        tensors, rest = tck.capture(self.family, self.rng, self.device)
        if self.private is not None:
            rest["privacy"] = self.private.state()
        man = {**self.manifest(), "resume": rest}
        path = ckf.save_checkpoint(
            self.folder.checkpoints / f"ckpt-{self.state.step:06d}.safetensors",
            tensors,
            man,
            key=self.folder.key,
        )
        ckf.prune(self.folder.checkpoints, self.cfg.train.keep)
        self.folder.write_manifest({**self.manifest(), "checkpoint": str(path)})
        self.folder.plot(self.cfg.preset)
        self.saved_step = self.state.step
        return path

    def restore(self, path: Path) -> None:
        """Load a checkpoint written by save() into this trainer."""
        tensors, man = ckf.load_checkpoint(path)
        if man.get("family") != self.cfg.family:
            raise UserError(
                f"{path} holds a {man.get('family')} model, not {self.cfg.family}; "
                "resume it with its own model"
            )
        if man["data"]["name"] != self.data.name:
            raise UserError(
                f"{path} was trained on {man['data']['name']}, not {self.data.name}; resume it "
                "without --data (or with the same data), or start a new run"
            )
        if self.cfg.train.init not in (None, man["config"]["train"].get("init")):
            raise UserError(
                f"train.init starts a new run from other weights, but {path} is resumed from its "
                "own: leave out --init to resume it, or start a new run with --init"
            )
        self.init_record = man.get("init")
        if man["data"]["fingerprint"] != self.data.fingerprint:
            raise UserError(
                f"the data of {man['data']['name']} changed since {path} was written; "
                "resume with the same data, or start a new run"
            )
        try:
            self.state = tck.restore(tensors, man, self.family, self.rng, self.batches, self.device)
        except (RuntimeError, ValueError, KeyError):
            saved = man["config"]["model"]
            now = cfglib.to_dict(self.cfg.model)
            changed = [
                f"model.{k} ({saved.get(k)!r} -> {v!r})"
                for k, v in now.items()
                if saved.get(k) != v
            ]
            raise UserError(
                f"{path} cannot be resumed with these settings: "
                + (", ".join(changed) if changed else "its networks differ")
                + " changed the networks; resume keeps a run's model (learning rates may "
                "change), so start a new run for another one"
            ) from None
        if self.private is not None:
            if "privacy" not in man["resume"]:
                raise UserError(
                    f"{path} was trained without privacy, and privacy.* now asks for it; a "
                    "private run spends its budget from its first step, so start a new run"
                )
            self.private.load_state(man["resume"]["privacy"])
        elif "privacy" in man["resume"]:
            raise UserError(
                f"{path} is a private run; resume it with its privacy settings (leave out the "
                "--set privacy.* that turned them off)"
            )
        self.saved_step = self.state.step
        if self.dist.is_main:
            self.folder.drop_stats_after(self.state.step)
            print(f"resumed {path} at step {self.state.step}", file=sys.stderr)

    def write_report(self, scores: list[Any] | None = None) -> None:
        """report.md: model, data, counters, command and the final scores with their cards."""
        rates = [r["img_per_s"] for r in self.folder.read_stats() if "img_per_s" in r]
        if rates:
            rate = f"last rate: {rates[-1]} img/s"
        else:  # a run shorter than train.log_every logged none
            seconds = max(self.state.elapsed, 1e-9)
            rate = f"rate: {self.batches.consumed / seconds:.1f} img/s over the run"
        self.folder.write_report(
            [
                f"- model: {self.cfg.preset} (family {self.cfg.family}), "
                f"parameters: {self.family.describe()}",
                f"- data: {self.data.name} ({self.data.split}), {len(self.data)} images, "
                f"fingerprint {self.data.fingerprint}",
                f"- steps: {self.state.step}, real images read: {self.batches.consumed}, "
                f"time: {fmt_duration(self.state.elapsed)}, {rate}, "
                f"processes: {self.dist.world}",
                f"- command: `{self.command}`",
                *([f"- {describe_init(self.init_record)}"] if self.init_record else []),
                *([f"- privacy: {privacy_line(self.private.record())}"] if self.private else []),
                *(f"- {sc} — card: {sc.card.describe()}" for sc in scores or []),
            ]
        )

    def _summary(self, scores: list[Any] | None = None) -> None:
        ckpts = ckf.list_checkpoints(self.folder.checkpoints)
        why = f" (stopped by {self._stop_signal})" if self._stop_signal else ""
        print(
            f"done{why}: {self.state.step} steps, {self.batches.consumed} real images read in "
            f"{fmt_duration(self.state.elapsed)}\n"
            f"  samples:    {self.folder.grids / 'grid-final.png'}\n"
            f"  stats:      {self.folder.stats} (plot: {self.run_dir / 'losses.png'})\n"
            + (
                f"  tensorboard: tensorboard --logdir {self.folder.events.path}\n"
                if self.folder.events is not None
                else ""
            )
            + f"  checkpoint: {ckpts[-1] if ckpts else '-'}\n"
            + "".join(f"  {sc}\n" for sc in scores or [])
            + f"  resume:     pixelsmith train --resume {self.run_dir}",
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
        if trainer.folder.events is not None:
            trainer.folder.events.close()
        trainer.dist.close()


def run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config of an existing run folder (from its newest checkpoint)."""
    man = ckf.read_manifest(ckf.resolve_checkpoint(run_dir))
    return config_from_dict(man["config"])
