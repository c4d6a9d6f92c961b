"""Differentially private training (DP-SGD) on the engine, through Opacus.

A private run (`privacy.epsilon` or `privacy.noise_multiplier` set) changes three things and
nothing else in the loop:

- batches are Poisson samples (every training image joins a step's batch independently with
  probability batch/n: train/batches.py's `PoissonBatches`), the sampling that the accountant's
  amplification bound assumes;
- the family's private networks (`Family.private_networks`: a classifier's network, a GAN's
  discriminator, a VAE's encoder and decoder) get Opacus's per-sample gradient hooks, and their
  optimisers become Opacus `DPOptimizer`s: each example's gradient is clipped to
  `max_grad_norm`, the clipped gradients are summed, Gaussian noise of standard deviation
  `noise_multiplier * max_grad_norm` is added, and the sum is divided by the expected batch;
- every private optimiser step is counted by Opacus's accountant (RDP by default), whose
  epsilon at `delta` the manifest, the report and every score's card record.

A network trained only through a private one (a GAN's generator learns from the private
discriminator's outputs, never from the data) is private by post-processing, as in DP-GAN and
GS-WGAN. Opacus computes the noise from a target epsilon and the step budget, or reports the
epsilon that a given noise reaches; pixelsmith never computes a bound itself.

The noise comes from a generator seeded from the operating system's randomness, unless
`privacy.seeded_noise` asks for the run's seed: a seeded run resumes bit for bit, but anyone
who knows its seed (the manifest records it) can subtract the noise, so a seeded run proves
nothing about privacy and its record says so.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models.base import frozen_weights

ACCOUNTANTS = ("rdp", "prv", "gdp")


@dataclass
class PrivacyConfig:
    """Settings of DP-SGD; a run is private when `epsilon` or `noise_multiplier` is set."""

    # The budget to spend over the run's steps: the noise is chosen to reach it at the end.
    epsilon: float | None = None
    # Or the noise itself (the run reports the epsilon it reaches); 0 trains without noise.
    noise_multiplier: float | None = None
    delta: float = 1e-5
    # Every example's gradient is clipped to this L2 norm before the noise is added.
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    # Noise from the run's seed (reproducible, exact resume) instead of the OS's randomness;
    # the record then says that the run is not private against whoever knows the seed.
    seeded_noise: bool = False

    @property
    def enabled(self) -> bool:
        return self.epsilon is not None or self.noise_multiplier is not None

    def validate(self) -> None:
        """Raise UserError on impossible settings."""
        require(
            self.epsilon is None or self.noise_multiplier is None,
            "privacy.epsilon and privacy.noise_multiplier both set: give the budget (the noise "
            "is chosen to spend it) or the noise (the run reports the epsilon it reaches)",
        )
        require(
            self.epsilon is None or self.epsilon > 0,
            f"privacy.epsilon must be positive, got {self.epsilon}",
        )
        require(
            self.noise_multiplier is None or self.noise_multiplier >= 0,
            f"privacy.noise_multiplier must be >= 0, got {self.noise_multiplier}",
        )
        require(0 < self.delta < 1, f"privacy.delta must lie in (0, 1), got {self.delta}")
        require(
            self.max_grad_norm > 0,
            f"privacy.max_grad_norm must be positive, got {self.max_grad_norm}",
        )
        require(
            self.accountant in ACCOUNTANTS,
            f"privacy.accountant must be one of {', '.join(ACCOUNTANTS)}, got {self.accountant!r}",
        )


def _opacus() -> Any:
    try:
        import opacus
    except ImportError:
        raise UserError(
            "private training needs Opacus: pip install 'pixelsmith[privacy]'"
        ) from None
    return opacus


def noise_for(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp"
) -> float:
    """The noise multiplier that spends `epsilon` at `delta` in `steps` Poisson steps (Opacus)."""
    _opacus()
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
        )
    )


def epsilon_of(
    noise: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp"
) -> float:
    """The epsilon at `delta` that `steps` Poisson steps at this noise spend (Opacus)."""
    if steps == 0:
        return 0.0
    if noise == 0:
        return math.inf
    acc = _accountant(accountant)
    acc.history = [(noise, sample_rate, steps)]
    return float(acc.get_epsilon(delta))


def _accountant(name: str) -> Any:
    _opacus()
    from opacus.accountants import create_accountant

    return create_accountant(name)


def step_budget(steps: int | None, epochs: float | None, sample_rate: float) -> int | None:
    """The number of private steps a budget of steps or epochs allows (None: a time budget)."""
    by_epochs = math.ceil(epochs / sample_rate) if epochs else None
    budgets = [b for b in (steps, by_epochs) if b]
    return min(budgets) if budgets else None


class PrivateTraining:
    """The per-sample hooks, private optimisers and accountant of one private run."""

    def __init__(
        self,
        cfg: PrivacyConfig,
        family: Any,
        n: int,
        batch: int,
        steps: int | None,
        seed: int,
    ) -> None:
        opacus = _opacus()
        self.cfg, self.n = cfg, n
        self.sample_rate = batch / n
        self.networks = tuple(family.private_networks)
        if not self.networks:
            raise UserError(
                f"the {family.name} family has no private training; the families that have one "
                "are classifier, gan (its discriminator), vae and merf (its release)"
            )
        _check_delta(cfg.delta, n)
        if cfg.epsilon is not None:
            if steps is None:
                raise UserError(
                    "privacy.epsilon needs a step budget to choose the noise for: give "
                    "train.steps or train.epochs, or set privacy.noise_multiplier instead and "
                    "the run reports the epsilon it reaches"
                )
            self.noise = noise_for(cfg.epsilon, cfg.delta, self.sample_rate, steps, cfg.accountant)
        else:
            self.noise = float(cfg.noise_multiplier)
        self.planned_steps = steps
        self.version = opacus.__version__
        self.accountant = _accountant(cfg.accountant)
        family.check_private()
        self._check_networks(family)
        self.generator = torch.Generator(family.device)
        self.generator.manual_seed(seed * 7919 + 17 if cfg.seeded_noise else secrets.randbits(63))
        self._wrap(family)

    def _check_networks(self, family: Any) -> None:
        """Refuse layers that mix examples (BatchNorm) or that Opacus has no per-sample rule for."""
        from opacus.validators import ModuleValidator

        for name in self.networks:
            errors = ModuleValidator.validate(family.networks[name], strict=False)
            if errors:
                batchnorm = any("BatchNorm" in str(e) for e in errors)
                fix = (
                    "BatchNorm mixes the examples of a batch, so one image's gradient reaches "
                    "every other's; use GroupNorm (a classifier: --set model.norm_layer=group; or "
                    "the classifier-dp preset)"
                    if batchnorm
                    else "; ".join(sorted({str(e) for e in errors}))
                )
                raise UserError(f"the {family.name} network {name!r} cannot train privately: {fix}")

    def _wrap(self, family: Any) -> None:
        from opacus import GradSampleModule

        expected = self.sample_rate * self.n * family.private_examples
        self.hooks = []
        for name in self.networks:
            for m in family.networks[name].modules():
                if getattr(m, "inplace", False):  # in-place ops break the backward hooks
                    m.inplace = False
            # The hooks sit on the network's own layers, so calling the network as the family
            # always does records per-sample gradients; its state_dict keeps its names.
            self.hooks.append(GradSampleModule(family.networks[name], loss_reduction="mean"))
            family.optimizers[name] = _optimizer_class()(
                family.optimizers[name],
                noise_multiplier=self.noise,
                max_grad_norm=self.cfg.max_grad_norm,
                expected_batch_size=expected,
                loss_reduction="mean",
                generator=self.generator,
                # Four draws per noise value: Opacus's defence against floating-point attacks.
                secure_mode=not self.cfg.seeded_noise,
            )
            family.optimizers[name].attach_step_hook(
                self.accountant.get_optimizer_hook_fn(self.sample_rate)
            )
        self.optimizers = [family.optimizers[name] for name in self.networks]
        # Opacus's full backward hooks fire on the first layer, whose input needs no gradient.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")

    @contextlib.contextmanager
    def freeze(self, net: torch.nn.Module) -> Iterator[None]:
        """No gradients for the network's weights, and no per-sample hooks if it is private."""
        hooks = [h for h in self.hooks if h._module is net]
        for h in hooks:
            h.disable_hooks()
        try:
            with frozen_weights(net):
                yield
        finally:
            for h in hooks:
                h.enable_hooks()

    @property
    def steps(self) -> int:
        """Private optimiser steps counted so far."""
        return sum(s for _, _, s in self.accountant.history)

    def epsilon(self) -> float:
        """The epsilon spent so far at the run's delta (inf without noise)."""
        if not self.accountant.history:
            return 0.0
        if self.noise == 0:
            return math.inf
        return float(self.accountant.get_epsilon(self.cfg.delta))

    def empty_step(self) -> None:
        """A step whose Poisson batch drew no image: every private optimiser adds its noise to
        a zero gradient (the accountant counts it), as the family's step would have."""
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
            for p in opt.params:
                p.grad_sample = torch.zeros(0, *p.shape, device=p.device, dtype=p.dtype)
            opt.step()

    def record(self) -> dict[str, Any]:
        """What the manifest, the report and the cards say about the run's privacy."""
        eps = self.epsilon()
        return {
            "mechanism": f"DP-SGD (Opacus {self.version}): Poisson sampling, per-sample "
            "clipping, Gaussian noise",
            "epsilon": eps if math.isfinite(eps) else "inf",
            "delta": self.cfg.delta,
            "accountant": self.cfg.accountant,
            "noise_multiplier": self.noise,
            "max_grad_norm": self.cfg.max_grad_norm,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "target_epsilon": self.cfg.epsilon,
            "planned_steps": self.planned_steps,
            "networks": list(self.networks),
            "noise": "seeded by the run's seed: NOT private against whoever knows it"
            if self.cfg.seeded_noise
            else "operating-system randomness",
        }

    def state(self) -> dict[str, Any]:
        """The accountant's history and the noise settings, for a checkpoint."""
        out: dict[str, Any] = {
            "history": [list(h) for h in self.accountant.history],
            "noise_multiplier": self.noise,
        }
        if self.cfg.seeded_noise:
            out["generator"] = self.generator.get_state().tolist()
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue a run: its noise (chosen for its budget) and the steps already spent."""
        self.noise = float(state["noise_multiplier"])
        for opt in self.optimizers:
            opt.noise_multiplier = self.noise
        self.accountant.history = [tuple(h) for h in state["history"]]
        if self.cfg.seeded_noise and "generator" in state:
            self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))


class PrivateRelease:
    """The one Gaussian release of a family that learns from a statistic of the data
    (abilities.releases: DP-MERF), counted by Opacus's accountant as one step at rate 1."""

    def __init__(self, cfg: PrivacyConfig, n: int, seed: int) -> None:
        opacus = _opacus()
        self.cfg, self.n, self.version = cfg, n, opacus.__version__
        _check_delta(cfg.delta, n)
        if cfg.epsilon is not None:
            self.noise = noise_for(cfg.epsilon, cfg.delta, 1.0, 1, cfg.accountant)
        else:
            self.noise = float(cfg.noise_multiplier)
        self.accountant = _accountant(cfg.accountant)
        self.generator = torch.Generator()
        self.generator.manual_seed(seed * 7919 + 17 if cfg.seeded_noise else secrets.randbits(63))

    def normal(self, shape: torch.Size) -> torch.Tensor:
        """Standard normal noise, four draws per value unless seeded (as Opacus's secure mode)."""
        from opacus.optimizers.optimizer import _generate_noise

        ref = torch.zeros(shape)
        return _generate_noise(1.0, ref, self.generator, secure_mode=not self.cfg.seeded_noise)

    def spend(self) -> None:
        """Count the release."""
        self.accountant.step(noise_multiplier=self.noise, sample_rate=1.0)

    def epsilon(self) -> float:
        """The epsilon spent at the run's delta (inf without noise, 0 before the release)."""
        if not self.accountant.history:
            return 0.0
        return math.inf if self.noise == 0 else float(self.accountant.get_epsilon(self.cfg.delta))

    def record(self) -> dict[str, Any]:
        """What the manifest, the report and the cards say about the run's privacy."""
        eps = self.epsilon()
        return {
            "mechanism": "Gaussian mechanism on the data's mean embedding, released once "
            f"(DP-MERF; Opacus {self.version} accountant); the generator never reads the data",
            "epsilon": eps if math.isfinite(eps) else "inf",
            "delta": self.cfg.delta,
            "accountant": self.cfg.accountant,
            "noise_multiplier": self.noise,
            "sensitivity": math.sqrt(2.0),
            "sample_rate": 1.0,
            "steps": sum(s for _, _, s in self.accountant.history),
            "target_epsilon": self.cfg.epsilon,
            "noise": "seeded by the run's seed: NOT private against whoever knows it"
            if self.cfg.seeded_noise
            else "operating-system randomness",
        }

    def state(self) -> dict[str, Any]:
        """The accountant's history and the noise, for a checkpoint."""
        return {
            "history": [list(h) for h in self.accountant.history],
            "noise_multiplier": self.noise,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue a run: the release is in its checkpoint, spent once."""
        self.noise = float(state["noise_multiplier"])
        self.accountant.history = [tuple(h) for h in state["history"]]


def _check_delta(delta: float, n: int) -> None:
    if delta > 1 / n:
        raise UserError(
            f"privacy.delta={delta:g} is above 1/n = 1/{n}: a mechanism that publishes "
            f"one whole training image meets that delta; use at most {1 / (10 * n):.2g}"
        )


def _optimizer_class() -> type:
    """Opacus's DPOptimizer, where no noise with an infinite clip (0 * inf is nan to it) adds
    none: the setting in which DP-SGD must equal plain training."""
    from opacus.optimizers import DPOptimizer
    from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed

    class Optimizer(DPOptimizer):
        def add_noise(self) -> None:
            if self.noise_multiplier != 0:
                return super().add_noise()
            for p in self.params:
                _check_processed_flag(p.summed_grad)
                p.grad = p.summed_grad.view_as(p)
                _mark_as_processed(p.summed_grad)
            return None

    return Optimizer
