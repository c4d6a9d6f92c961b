"""Transfer learning: a new run starts from another model's weights (`--init`), optionally with
its discriminator's first layers frozen (FreezeD, Mo et al. 2020).

`init_from` copies the source's networks into a freshly built model by name and shape: a tensor
whose name and shape match is copied; the rest keep their fresh initialisation and are reported
(different image channels, widths or settings are what the report is for). The generator's
moving average is preferred, as sampling does: it goes into both the live network and its
average. The engine calls `setup` after the model is built and before its optimisers are made.

What FreezeD counts as a layer (`layers`): the network's weighted units in forward order, that
is its child modules holding parameters, with nn.Sequential and nn.ModuleList containers opened
up; any other block counts as one layer. So the GAN discriminator's layers are its convolutions,
then its output and projection, and StyleGAN's are from_rgb, each residual block, conv, fc, out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelsmith.errors import UserError
from pixelsmith.models.base import Family
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.zoo import resolve, zoo_name

Log = Callable[[str], None]
# The network FreezeD freezes layers of.
DISCRIMINATOR = "D"
# Shape mismatches the printed report names (the manifest keeps the counts).
_SHOWN = 3


@dataclass
class InitReport:
    """What `init_from` copied from its source and what it left at its fresh initialisation."""

    source: str
    payload_sha256: str
    family: str
    copied: list[str] = field(default_factory=list)
    # (tensor, source shape, target shape)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    # Tensors of a network the source has whose name the source lacks.
    missing: list[str] = field(default_factory=list)
    missing_networks: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many tensors were copied, had another shape, or had no source tensor."""
        return {
            "copied": len(self.copied),
            "shape_mismatch": len(self.mismatched),
            "missing": len(self.missing),
        }

    def record(self) -> dict[str, Any]:
        """What a run's manifest keeps: the source, its payload hash and the counts."""
        return {
            "source": self.source,
            "family": self.family,
            "payload_sha256": self.payload_sha256,
            **self.counts(),
            "missing_networks": list(self.missing_networks),
        }

    def lines(self) -> list[str]:
        """The report in a few lines: counts, then the first mismatches."""
        c = self.counts()
        total = sum(c.values())
        out = [
            f"init: from {self.source} ({self.family}, payload {self.payload_sha256[:12]}): "
            f"{c['copied']} of {total} tensors copied, {c['shape_mismatch']} of another shape "
            f"and {c['missing']} absent from the source keep their fresh initialisation"
        ]
        for name, src, dst in self.mismatched[:_SHOWN]:
            out.append(f"  {name}: {tuple(src)} in the source, {tuple(dst)} here")
        if len(self.mismatched) > _SHOWN:
            out.append(f"  ... and {len(self.mismatched) - _SHOWN} more of another shape")
        if self.missing_networks:
            out.append(f"  the source has no network {', '.join(self.missing_networks)}")
        return out


def _source_network(model: Family, name: str, available: set[str]) -> str | None:
    """The source network to copy into `name`: the average of a generator when there is one."""
    live = next((src for src, dst in model.ema_pairs.items() if name in (src, dst)), None)
    if live is None:
        return name if name in available else None
    for candidate in (model.ema_pairs[live], live):
        if candidate in available:
            return candidate
    return None


def init_from(model: Family, source: str | Path) -> InitReport:
    """Copy a run's, checkpoint's or "zoo:NAME"'s networks into `model` by name and shape."""
    path = resolve(source)
    tensors, man = ckf.load_checkpoint(path)
    by_net: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith("net/"):
            net, _, rest = key[4:].partition("/")
            by_net.setdefault(net, {})[rest] = t
    label = str(source) if zoo_name(source) is not None else str(path)
    if man.get("family") != model.name:
        raise UserError(
            f"--init {source} holds a {man.get('family')} model; a {model.name} model can only "
            f"start from a {model.name} model"
        )
    report = InitReport(label, str(man.get("payload_sha256", "")), str(man.get("family")))
    with torch.no_grad():
        for name, net in model.networks.items():
            src_name = _source_network(model, name, set(by_net))
            if src_name is None:
                report.missing_networks.append(name)
                continue
            src = by_net[src_name]
            for key, target in net.state_dict().items():
                full = f"{name}/{key}"
                if key not in src:
                    report.missing.append(full)
                elif tuple(src[key].shape) != tuple(target.shape):
                    report.mismatched.append((full, tuple(src[key].shape), tuple(target.shape)))
                else:
                    target.copy_(src[key].to(target.dtype))
                    report.copied.append(full)
    if not report.copied:
        raise UserError(f"--init {source}: not one tensor fits this model (shapes all differ)")
    return report


# ---- FreezeD -------------------------------------------------------------------------------


def _units(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            yield from _units(child, f"{prefix}{name}.")
        elif any(True for _ in child.parameters()):
            yield f"{prefix}{name}", child


def layers(model: Family, network: str = DISCRIMINATOR) -> list[tuple[str, nn.Module]]:
    """A network's layers (see the module doc) in the order one forward pass runs them."""
    net = model.networks[network]
    units = list(_units(net))
    first: dict[str, int] = {}

    def seen(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            first.setdefault(name, len(first))

        return hook

    hooks = [m.register_forward_pre_hook(seen(n)) for n, m in units]
    x = torch.zeros(2, *model.image_shape, device=model.device)
    args = (x, torch.zeros(2, dtype=torch.long, device=model.device)) if model.classes else (x,)
    mode = net.training
    try:
        with torch.no_grad():
            net.eval()(*args)  # eval: spectral norm's power iteration leaves its vectors alone
    finally:
        net.train(mode)
        for h in hooks:
            h.remove()
    order = {n: first.get(n, len(units) + i) for i, (n, _) in enumerate(units)}
    return sorted(units, key=lambda u: order[u[0]])


def _freeze(module: nn.Module) -> None:
    """Make a module's parameters buffers of the same names and values.

    requires_grad False alone does not hold: the adversarial step turns D's gradients back on
    after each G step. As buffers they get no gradients, no optimiser holds them, and the
    state_dict (so every checkpoint) keeps its names.
    """
    for mod in module.modules():
        for key, p in list(mod._parameters.items()):
            if p is not None:
                del mod._parameters[key]
                mod.register_buffer(key, p.detach().requires_grad_(False))


def freeze_layers(model: Family, network: str, n: int) -> tuple[list[str], int]:
    """Freeze the first `n` layers of one of the model's networks; returns their names and how
    many layers the network has."""
    if network not in model.networks:
        nets = ", ".join(model.networks)
        raise UserError(
            f"train.freeze_d freezes a discriminator's first layers, and the {model.name} family "
            f"has no discriminator {network} (its networks: {nets}); leave train.freeze_d at 0"
        )
    found = layers(model, network)
    if n > len(found):
        raise UserError(
            f"train.freeze_d={n} asks for more layers than the {model.name} discriminator has "
            f"({len(found)}: {', '.join(name for name, _ in found)})"
        )
    for _, mod in found[:n]:
        _freeze(mod)
    return [name for name, _ in found[:n]], len(found)


def setup(
    model: Family, init: str | None, freeze_d: int, fresh: bool, log: Log | None = None
) -> dict[str, Any] | None:
    """Apply train.init (fresh runs only) and train.freeze_d before the optimisers are made;
    returns the init record for the run's manifest (None without --init or on a resume)."""
    say = log or (lambda _: None)
    record = None
    if init and fresh:
        report = init_from(model, init)
        for line in report.lines():
            say(line)
        record = report.record()
    if freeze_d:
        names, total = freeze_layers(model, DISCRIMINATOR, freeze_d)
        frozen = ", ".join(names)
        say(f"freeze_d: {DISCRIMINATOR}'s first {freeze_d} of {total} layers frozen ({frozen})")
    return record


def describe_init(record: dict[str, Any]) -> str:
    """One line for a run's report: where its weights came from and how many were copied."""
    return (
        f"fine-tuned from {record['source']} (payload {record['payload_sha256'][:12]}): "
        f"{record['copied']} tensors copied, {record['shape_mismatch']} of another shape and "
        f"{record['missing']} absent from the source kept fresh"
    )
