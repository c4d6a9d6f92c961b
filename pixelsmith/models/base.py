"""The contract between a model family and everything that uses it: the training engine, the
generate layer (loading and sampling), the metrics, the CLI and the server.

A family declares, as class attributes, everything a caller needs; nothing is found by probing
signatures or attributes:

- `name`, `Config` (the typed model settings) and `presets` (one table: see `Preset`);
- `abilities`: what it can do (draw images, translate or restore images, score a likelihood,
  mix styles, classify images), each answered by one method of this class;
- `SampleConfig`: its typed sampling options (`labels` for conditional families, a diffusion
  model's `steps`, a StyleGAN's `truncation`, ...); every score's protocol card records them;
- `ema_pairs`: the networks whose moving average the engine builds and keeps, and
  `generator_net`: the network that makes its images (`inference_net` gives the one to infer
  with: its moving average when the family keeps one);
- `latent_spaces`: the latent spaces a generator's codes live in (first = default), each
  described by `latent_spec` and served by the `latent_*` methods, which the latent tools
  (`pixelsmith.edit.latent`) call instead of reaching into the networks;
- `not_exported`: why its inference network does not export to ONNX (empty when it does);
- `max_size` and `REQUIRED_DATA`: what data it is made for, checked before a run folder exists;
- `private_networks`: the networks that see the data, trained with DP-SGD in a private run.

Per instance, `classes` is the number of classes it conditions on (0 = unconditional).

Training goes through `train_step(batch, ctx)`. A `Batch` carries real images, their labels and,
for paired image-to-image models (super-resolution, denoising, inpainting), the degraded inputs
that `prepare_batch` makes from the clean images on the fly, with the step's seeded randomness;
the engine calls `prepare_batch` on every batch, so such models need no special case in the loop.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from pixelsmith import config as cfglib
from pixelsmith.errors import UserError
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.utils.rng import BatchRandom

# Called by a family on a network after backward and before its optimiser step; the engine
# averages gradients across processes there (a no-op in single-process runs).
GradSync = Callable[[nn.Module], None]


@dataclass(frozen=True)
class Abilities:
    """What a family can do; callers branch on these, never on the family's name."""

    # Draws images from noise (`sample`): sample metrics (FID, KID, IS, PR) apply.
    generates: bool = True
    # Maps images of one domain to another, a2b and b2a (`translate`; CycleGAN).
    translates: bool = False
    # Maps degraded images to clean ones (`restore`; super-resolution, denoising, inpainting),
    # trained on the (degraded, clean) pairs that its `prepare_batch` makes.
    restores: bool = False
    # Scores real images' negative log-likelihood (`nll_scores`).
    likelihood: bool = False
    # Mixes coarse and fine styles of two latents (`style_mix`).
    style_mix: bool = False
    # Encodes images into its latent space and decodes them back (`reconstruct`).
    encodes: bool = False
    # Renders codes of its `latent_spaces` (the `latent_*` methods): inversion, interpolation,
    # directions and, where a space's codes mix, style mixing apply.
    latent: bool = False
    # Maps images in [0, 1] to class logits (`classify`; `classifier` is the nn.Module that
    # attacks take, `defence_settings` the attack it was trained against): accuracy applies.
    classifies: bool = False
    # Scores real images with the discriminator it trained against (`discriminate`): the
    # white-box membership attack applies.
    discriminates: bool = False
    # Learns from one release of a statistic of the data, made by the engine before the first
    # step (`release`), not from batches; a private run adds the noise of its budget to it.
    releases: bool = False


@dataclass(frozen=True)
class LatentSpec:
    """One of a family's latent spaces, as the family declares it (`Family.latent_spec`)."""

    kind: str
    # One image's code: (dim,), or (layers, dim) for per-layer codes such as StyleGAN's W+.
    shape: tuple[int, ...]
    # How to move between two codes: "slerp" for Gaussian codes, "lerp" for others.
    interpolation: str = "lerp"
    # Per-layer codes: the space each layer's code lives in (W+: "w"), so its codes extend.
    layer_of: str = ""
    # Whether codes can be style-mixed: layers [0, k) from one code, the rest from another.
    mixes: bool = False
    # The space where directions that move these codes are found ("" = none for this space).
    directions: str = ""

    @property
    def dim(self) -> int:
        return self.shape[-1]

    @property
    def layers(self) -> int:
        return self.shape[0] if len(self.shape) == 2 else 1


@dataclass
class SampleConfig:
    """Sampling options of a family without any; families subclass it and add theirs."""

    def check(self, model_cfg: Any) -> None:
        """Raise UserError on options the model's settings rule out (no data or weights needed,
        so a config is checked before anything is loaded)."""

    def validate(self, model: Family) -> None:
        """Raise UserError on options this model cannot honour (its settings and classes)."""
        self.check(model.cfg)

    def settings(self, model: Family) -> dict[str, Any]:
        """The options as a protocol card records them (defaults resolved for `model`)."""
        d = cfglib.to_dict(self)
        if "labels" in d:
            if not model.classes:
                del d["labels"]  # an unconditional model has no labels to record
            elif d["labels"] is None:
                d["labels"] = "0..k-1 cycling"
        return d


@dataclass
class LabelledSampleConfig(SampleConfig):
    """Sampling options of a family that can condition on classes."""

    # The class of each image, cycled to the number asked for (one value: all images of that
    # class); unset: 0, 1, 2, ... cycling, which is what grids and evaluations use.
    labels: tuple[int, ...] | None = None

    def validate(self, model: Family) -> None:
        """Also refuse labels for an unconditional model, and labels outside its classes."""
        super().validate(model)
        if self.labels is not None:
            model.check_labels(self.labels)


@dataclass(frozen=True)
class Preset:
    """A named bundle of settings: what it is for, the budget it is made for, and the settings.

    `settings` is a nested mapping over the run config's sections (model, data, train, sample).
    A run of a preset with no --steps, --epochs or --minutes trains for `minutes`.
    """

    about: str
    minutes: float
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass
class Batch:
    """One training batch of this process, images in [0, 1]."""

    images: Tensor
    labels: Tensor | None = None
    # Paired image-to-image models: the degraded images the model learns to map to `images`.
    inputs: Tensor | None = None
    # Inpainting: (N, 1, H, W), 1 = the hole `inputs` lacks (passed on to `restore`).
    mask: Tensor | None = None


@dataclass
class StepContext:
    """What a training step may use besides its batch."""

    rng: BatchRandom
    step: int
    # The next batch (augmented and prepared), for steps that read more than one (WGAN-GP).
    next_batch: Callable[[], Batch]
    sync: GradSync
    # In a private run, the expected batch: what a step draws as many fakes as (their count and
    # labels must not depend on the real batch's), else None.
    private_batch: int | None = None
    # A context in which a network's weights take no gradient (a GAN's D while G steps through
    # it); a private run's also pauses the network's per-sample hooks.
    freeze: Callable[[nn.Module], contextlib.AbstractContextManager[None]] = lambda net: (
        frozen_weights(net)
    )


@contextlib.contextmanager
def frozen_weights(net: nn.Module) -> Iterator[None]:
    """The network's weights take no gradient inside."""
    net.requires_grad_(False)
    try:
        yield
    finally:
        net.requires_grad_(True)


class Family(ABC):
    """A model family: its networks, objective, optimisers and sampler (see the module doc)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    SampleConfig: ClassVar[type[SampleConfig]] = SampleConfig
    abilities: ClassVar[Abilities] = Abilities()
    # The family's presets; the first is its default (`pixelsmith train FAMILY`).
    presets: ClassVar[dict[str, Preset]] = {}
    # Networks whose exponential moving average the engine keeps: {source: average}.
    ema_pairs: ClassVar[dict[str, str]] = {}
    # The network that makes the family's images (None: no single one, e.g. two translators).
    generator_net: ClassVar[str | None] = None
    # The latent spaces of its generator (abilities.latent); the first is the default.
    latent_spaces: ClassVar[tuple[str, ...]] = ()
    # Why its inference network does not export to ONNX ("" when it does).
    not_exported: ClassVar[str] = ""
    # The largest image side the family is made for (data.size above it is refused).
    max_size: ClassVar[int] = 256
    # The networks that see the training data and train with DP-SGD in a private run
    # (train/privacy.py), each with the optimiser of the same name; the others learn only
    # through them. Empty: the family has no private training.
    private_networks: ClassVar[tuple[str, ...]] = ()
    # Examples that their loss averages over per real image (a GAN's D scores a real and a
    # fake): DP-SGD divides its noisy sum by the expected batch times this.
    private_examples: ClassVar[int] = 1
    # Data settings the family cannot train without, checked before a run folder is made:
    # {"balance": (True, "why")}.
    REQUIRED_DATA: ClassVar[dict[str, tuple[Any, str]]] = {}

    def __init__(self, cfg: Any, image_shape: tuple[int, int, int], num_classes: int = 0):
        self.check_shape(image_shape)
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        self.num_classes = int(num_classes)
        # Classes the model conditions on; conditional families set it with `require_classes`.
        self.classes = 0
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.device = torch.device("cpu")
        self.sample_defaults: SampleConfig = self.SampleConfig()
        # Set when loaded from a file (`from_checkpoint`).
        self.manifest: dict[str, Any] = {}
        self.checkpoint: Path | None = None

    # ---- building and loading -------------------------------------------------------------

    @classmethod
    def check_shape(cls, image_shape: Sequence[int]) -> None:
        """Refuse images larger than the family is made for, naming data.size."""
        side = max(image_shape[1:])
        if side > cls.max_size:
            h, w = image_shape[1:]
            raise UserError(
                f"{h}x{w} images are larger than the {cls.name} family is made for (at most "
                f"{cls.max_size} pixels a side): set data.size, e.g. --set data.size=64"
            )

    @classmethod
    def config_from(cls, model_settings: dict[str, Any]) -> Any:
        """The family's Config from a saved mapping (older layouts upgraded by `upgrade`)."""
        cfg = cls.Config()
        cfglib.apply(cfg, cls.upgrade(dict(model_settings))[0])
        return cfg

    @classmethod
    def upgrade(cls, model_settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(model settings, sample settings) from a config saved by an older pixelsmith."""
        return model_settings, {}

    def add_ema_copies(self) -> None:
        """Add the averaged copy of each network in `ema_pairs` (frozen, in eval mode)."""
        for src, dst in self.ema_pairs.items():
            if dst not in self.networks:
                self.networks[dst] = copy.deepcopy(self.networks[src]).requires_grad_(False).eval()

    def _network_name(self, name: str | None = None) -> str:
        """`name`, or the family's generator network when None (ValueError if it has none)."""
        name = name or self.generator_net
        if name is None:
            raise ValueError(f"the {self.name} family names no generator network; name one")
        return name

    def inference_net(self, name: str | None = None) -> nn.Module:
        """The network to infer with: the moving average of `name` (default: `generator_net`)
        if the family keeps one and has built it, else `name` itself. Its mode is unchanged.

        A family built outside the engine has no averages yet and uses `name` itself.
        """
        name = self._network_name(name)
        net = self.networks.get(self.ema_pairs.get(name, name))
        return self.networks[name] if net is None else net

    def with_average(self, name: str | None = None) -> tuple[str, ...]:
        """The keys of network `name` (default: `generator_net`) and of its moving average,
        if the family keeps one: what a change to the network must change alike."""
        name = self._network_name(name)
        return (name, self.ema_pairs[name]) if name in self.ema_pairs else (name,)

    @contextlib.contextmanager
    def inference(self, name: str, average: bool = True) -> Iterator[nn.Module]:
        """The network to infer with, in eval mode: `inference_net(name)` (`name` itself without
        `average`), whose train/eval mode is restored afterwards."""
        net = self.inference_net(name) if average else self.networks[name]
        mode = net.training
        net.eval()
        try:
            yield net
        finally:
            net.train(mode)

    @classmethod
    def inference_model(
        cls, cfg: Any, image_shape: tuple[int, int, int], num_classes: int
    ) -> Family:
        """The model a checkpoint of this family loads into for inference (itself, unless a
        family trains one thing and ships another, as distillation does)."""
        return cls(cfg, image_shape, num_classes)

    @classmethod
    def from_checkpoint(cls, target: str | Path, device: str | torch.device = "cpu") -> Family:
        """The family with its trained (averaged) weights from a run folder or checkpoint."""
        path = ckf.resolve_checkpoint(target)
        tensors, man = ckf.load_checkpoint(path)
        if man.get("family") != cls.name:
            raise UserError(f"{path} holds a {man.get('family')} model, not a {cls.name} model")
        saved = man["config"]
        try:
            cfg = cls.config_from(saved["model"])
            model = cls.inference_model(cfg, tuple(man["image_shape"]), man["num_classes"])
            model.sample_defaults = model.sample_options(
                None, **{**cls.upgrade(dict(saved["model"]))[1], **saved.get("sample", {})}
            )
        except UserError as e:
            msg = f"{path} claims a {cls.name} model but its settings do not fit: {e}"
            raise UserError(msg) from None
        model.add_ema_copies()
        for src, avg in cls.ema_pairs.items():  # a zoo file keeps the average alone
            if not any(k.startswith(f"net/{src}/") for k in tensors):
                n = len(f"net/{avg}/")
                tensors.update(
                    {
                        f"net/{src}/{k[n:]}": v
                        for k, v in tensors.items()
                        if k.startswith(f"net/{avg}/")
                    }
                )
        try:
            ckf.load_networks(model.networks, tensors)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise UserError(f"{path} does not match its own manifest ({first})") from None
        model.manifest, model.checkpoint = man, path
        return model.to(device).eval()

    # ---- training --------------------------------------------------------------------------

    @abstractmethod
    def configure_optimizers(self) -> None:
        """Create `self.optimizers` (only needed for training)."""

    def fit_data(self, images: Tensor, seed: int) -> None:  # noqa: B027 - most need nothing
        """Learn what a fresh run needs from its uint8 training images before the first step."""

    def prepare_batch(self, batch: Batch, rng: BatchRandom) -> Batch:  # noqa: ARG002
        """Turn a batch of real images into what `train_step` takes (paired models degrade)."""
        return batch

    @abstractmethod
    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One optimisation step; returns scalar losses to log."""

    def tuning_keys(self) -> list[str]:
        """The model settings to lower when training diverges (its learning rates)."""
        return [f"model.{f.name}" for f in dataclasses.fields(self.cfg) if f.name.startswith("lr")]

    # ---- sampling --------------------------------------------------------------------------

    def sample_options(self, options: SampleConfig | None = None, **overrides: Any) -> SampleConfig:
        """Sampling options: `options` (default: the model's own) with keyword overrides."""
        opts = copy.deepcopy(options if options is not None else self.sample_defaults)
        if not isinstance(opts, self.SampleConfig):
            raise TypeError(f"{self.name} takes {self.SampleConfig.__name__}, not {type(opts)}")
        for key, value in overrides.items():
            self.set_sample_option(opts, key, value)
        opts.validate(self)
        return opts

    def set_sample_option(
        self, opts: SampleConfig, key: str, value: Any, parse: bool = False
    ) -> None:
        """Set one sampling option (text read as YAML with `parse`), naming the valid ones."""
        if key not in cfglib.valid_keys(opts):
            keys = [k for k in cfglib.valid_keys(opts) if k != "labels" or self.classes]
            known = ", ".join(f"sample.{k}" for k in keys) if keys else "none"
            raise UserError(
                f"the {self.name} model has no sampling option {key!r}; its options: {known}"
            )
        cfglib.set_key(opts, key, value, parse=parse)

    @torch.no_grad()
    def sample(
        self, n: int, seed: int = 0, options: SampleConfig | None = None, **overrides: Any
    ) -> Tensor:
        """n images as an (n, C, H, W) float tensor in [0, 1], the same for the same seed.

        Options come from `options` (default: the model's own) with keyword overrides, e.g.
        `sample(16, seed=0, steps=25)` or `sample(8, labels=[3])`.
        """
        if n < 0:
            raise UserError(f"the number of images must be >= 0, got {n}")
        opts = self.sample_options(options, **overrides)
        if n == 0:
            return torch.empty(0, *self.image_shape)
        return self.draw(n, int(seed), opts, self.labels_for(n, opts))

    def labels_for(self, n: int, opts: SampleConfig) -> Tensor | None:
        """The class of each of n images for a conditional model (None when unconditional)."""
        if not self.classes:
            return None
        given = opts.labels if isinstance(opts, LabelledSampleConfig) else None
        if not given:
            return torch.arange(n) % self.classes
        return torch.tensor(given, dtype=torch.long).repeat(-(-n // len(given)))[:n]

    @abstractmethod
    def draw(self, n: int, seed: int, opts: SampleConfig, labels: Tensor | None) -> Tensor:
        """The sampler behind `sample`: n > 0 images for checked options and labels."""

    # ---- what some families can do besides sampling (see `abilities`) ------------------------

    def nll_scores(
        self, images: Tensor, labels: Tensor | None = None, seed: int = 0
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Negative log-likelihood figures of real uint8 images and the settings they used."""
        raise UserError(f"the {self.name} family has no likelihood to score images with")

    def translate(self, images: Tensor, direction: str = "a2b") -> Tensor:
        """Images in [0, 1] of one domain as the other (families that translate)."""
        raise UserError(f"the {self.name} family does not translate images")

    def restore(self, images: Tensor, mask: Tensor | None = None) -> Tensor:
        """Degraded images in [0, 1] restored (families that restore); `mask` (N, 1, H, W),
        1 = hole, for inpainting. Output is larger than the input for super-resolution."""
        raise UserError(f"the {self.name} family does not restore images")

    def preview(self, clean: Tensor, seed: int = 0) -> Tensor:
        """(degraded, restored, clean) of each image in turn, for grids (families that restore);
        a degraded image of another size is shown resized to the clean one (nearest)."""
        pair = self.prepare_batch(Batch(clean), BatchRandom(seed))
        assert pair.inputs is not None
        out = self.restore(pair.inputs, mask=pair.mask).clamp(0, 1)
        shown = pair.inputs.clamp(0, 1)
        if shown.shape[-2:] != clean.shape[-2:]:
            shown = torch.nn.functional.interpolate(shown, size=tuple(clean.shape[-2:]))
        return torch.stack([shown, out, clean], 1).flatten(0, 1)

    def reconstruct(self, images: Tensor) -> Tensor:
        """Images in [0, 1] encoded into the latent space and decoded (families that encode)."""
        raise UserError(f"the {self.name} family has no encoder to reconstruct images with")

    def classify(self, images: Tensor) -> Tensor:
        """Logits (N, K) of images (uint8, or float in [0, 1]) (families that classify)."""
        raise UserError(f"the {self.name} family does not classify images")

    def classifier(self) -> nn.Module:
        """An nn.Module in eval mode mapping float images in [0, 1] to logits (families that
        classify)."""
        raise UserError(f"the {self.name} family does not classify images")

    def discriminate(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """The discriminator's score (N,) of images in [0, 1]: higher is "more real" (families
        that discriminate)."""
        raise UserError(f"the {self.name} family has no discriminator to score images with")

    def release(
        self,
        images: Tensor,
        labels: Tensor | None,
        noise_multiplier: float,
        normal: Callable[[torch.Size], Tensor] | None,
    ) -> None:
        """Keep the statistic of the training images the family learns from (abilities.releases),
        with Gaussian noise of `noise_multiplier` times its sensitivity drawn by `normal`."""
        raise UserError(f"the {self.name} family learns from batches, not from a release")

    def check_private(self) -> None:  # noqa: B027 - most families have nothing to refuse
        """Raise UserError on settings that DP-SGD cannot account for (families with
        `private_networks`), before a private run starts."""

    def defence_settings(self) -> dict[str, Any]:
        """The attack a classifier was trained against, as cards record it (families that
        classify; {"attack": "none"} for plain training)."""
        raise UserError(f"the {self.name} family does not classify images")

    def style_mix(
        self,
        row_seeds: Sequence[int],
        col_seeds: Sequence[int],
        options: SampleConfig | None = None,
        crossover: int | None = None,
    ) -> Tensor:
        """A style-mixing grid: coarse styles of each row seed, fine ones of each column seed."""
        raise UserError(f"the {self.name} family cannot mix styles")

    # ---- the latent space (families with abilities.latent; see `latent_spaces`) -------------

    def latent_spec(self, kind: str) -> LatentSpec:
        """The codes of latent space `kind` (one of `latent_spaces`): shape and rules."""
        raise UserError(f"the {self.name} family has no latent space")

    def latent_prior(self, n: int, seed: int) -> Tensor:
        """n draws of the generator's Gaussian input z (on the CPU), as `sample(n, seed=seed)`
        draws them: z ~ N(0, I) of the "z" space's width, from one generator seeded `seed`."""
        dim = self.latent_spec("z").dim
        return torch.randn(n, dim, generator=torch.Generator().manual_seed(int(seed)))

    def latent_from_z(self, z: Tensor, kind: str, truncation: float = 1.0) -> Tensor:
        """Codes in space `kind` of the images z draws (mapped, for spaces other than z, at
        the truncation), on z's device."""
        if kind == "z":
            return z
        raise UserError(f"the {self.name} family has no {kind} space")

    def latent_start(self, codes: Tensor, images: Tensor, kind: str) -> Tensor:
        """Starting codes for inverting `images` in [0, 1] (N, C, H, W), given the start's:
        what gradient steps cannot change (a family's discrete choices) set for the images."""
        return codes

    def latent_mean(self, kind: str) -> Tensor:
        """The code of the 'average' image in space `kind`, one row (1, *shape)."""
        shape = self.latent_spec(kind).shape
        return torch.zeros(1, *shape, device=self.device)

    def latent_render(self, codes: Tensor, kind: str, labels: Tensor | None = None) -> Tensor:
        """Images in about [0, 1] (not clamped) from codes (N, *shape) of space `kind`, through
        `inference_net()`, differentiable in the codes; `labels` for a conditional model."""
        raise UserError(f"the {self.name} family has no latent space")

    def latent_encode(self, images: Tensor, kind: str) -> Tensor | None:
        """The family's own exact encoder's codes in space `kind` for images in [0, 1] (the
        VAE's posterior mean), or None when it has none for that space."""
        return None

    def sample_settings(self, opts: SampleConfig | None = None) -> dict[str, Any]:
        """Sampling options as they go on a protocol card (the model's own by default)."""
        return (opts if opts is not None else self.sample_defaults).settings(self)

    # ---- devices and description -------------------------------------------------------------

    def check_labels(self, labels: Sequence[int] | Tensor, n: int | None = None) -> Tensor:
        """Labels as a long tensor, each a class of this model (and n of them, if given)."""
        if not self.classes:
            raise UserError(
                f"this {self.name} model is unconditional, so it takes no labels; leave out "
                "--labels (train with --set model.conditional=true for a class-conditional one)"
            )
        ids = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if n is not None and len(ids) != n:
            raise UserError(f"{len(ids)} labels were given for {n} images; give one per image")
        bad = ids[(ids < 0) | (ids >= self.classes)]
        if len(bad):
            raise UserError(
                f"label {int(bad[0])} is not a class of this model; its {self.classes} classes "
                f"are 0-{self.classes - 1}"
            )
        return ids

    def require_classes(self, conditional: bool, what: str) -> int:
        """The class count a conditional model uses (0 when unconditional); refuses < 2 classes."""
        if not conditional:
            return 0
        if self.num_classes < 2:
            raise UserError(
                f"a conditional {what} needs labelled data with at least 2 classes; use a labelled "
                "source (fashion-mnist, mnist, shapes, or a folder with class sub-folders) or "
                "--set model.conditional=false"
            )
        return self.num_classes

    def to(self, device: str | torch.device) -> Family:
        """Move every network to `device`."""
        self.device = torch.device(device)
        for net in self.networks.values():
            net.to(self.device)
        return self

    def eval(self) -> Family:
        """Put every network in inference mode."""
        for net in self.networks.values():
            net.eval()
        return self

    def describe(self) -> dict[str, Any]:
        """Parameter counts per network."""
        return {k: sum(p.numel() for p in v.parameters()) for k, v in self.networks.items()}
