"""ONNX export of a model's inference network, weights and metadata in one file.

What exports: the generators with a latent space (`abilities.latent`: gan, stylegan, vae: latent
z -> image in [0, 1], and the class for a conditional GAN), translators (`abilities.translates`:
CycleGAN, image -> image) and the restoration networks (`abilities.restores`): the network alone,
from its whole input (the degraded pixels and the whole-image conditions that
`Restore.network_input` computes outside it: the noise level, the harmonic fill and mask, the
exposure statistics) to the restored pixels, before the clamp and the copy of known pixels, with a
dynamic height and width (multiples of the network's stride). What does not export is refused with
the reason its family declares (`Family.not_exported`), or `NOT_ONE_SHOT`: the diffusion and
PixelCNN samplers (loops over network calls, whose one call is not the model). The graph comes from
`torch.onnx.export(..., dynamo=True)` with a dynamic batch; the metadata holds the family, image
shape, latent size (or the restoration task, scale and stride), pixelsmith version and the source
checkpoint's payload hash.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pixelsmith.errors import UserError
from pixelsmith.models.base import Family
from pixelsmith.version import __version__

INSTALL_HINT = "pip install 'pixelsmith[deploy]' (onnx, onnxscript and onnxruntime)"
# What export covers; a family outside it that declares no reason of its own gets this one.
NOT_ONE_SHOT = (
    "its images come from neither one call of a generator on a latent code nor a translator "
    "(a sampler that loops over network calls, or work outside the network, does not export)"
)


class _Generator(nn.Module):
    """z (and labels) -> images in [0, 1], through a LatentSpace's render."""

    def __init__(self, render: Callable[..., Tensor], conditional: bool):
        super().__init__()
        self.render, self.conditional = render, conditional

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.render(z, labels).clamp(0, 1)


class _Translator(nn.Module):
    """Images in [0, 1] of one domain -> the other, as CycleGAN.translate computes them."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        return ((self.net(images * 2 - 1) + 1) / 2).clamp(0, 1)


class _Restorer(nn.Module):
    """A restoration network under the input name the export gives it."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, inputs: Tensor) -> Tensor:
        return self.net(inputs)


@dataclass
class Exported:
    """An exportable network with example inputs and what its metadata says."""

    module: nn.Module
    inputs: dict[str, Tensor]
    metadata: dict[str, str]


def exportable(model: Family, direction: str = "a2b") -> Exported:
    """The network of `model` that `export_onnx` writes, or UserError saying why there is none
    (the family's declared `not_exported` reason)."""
    abilities = model.abilities
    covered = abilities.translates or abilities.latent or abilities.restores
    why = model.not_exported or ("" if covered else NOT_ONE_SHOT)
    if why:
        raise UserError(f"a {model.name} model does not export to ONNX: {why}")
    meta = {
        "pixelsmith_version": __version__,
        "family": model.name,
        "image_shape": json.dumps(list(model.image_shape)),
        "source_payload_sha256": str(model.manifest.get("payload_sha256", "")),
        "source_checkpoint": Path(model.checkpoint).name if model.checkpoint else "",
    }
    if abilities.restores:
        return _restoration(model, meta)
    if abilities.translates:
        if direction not in ("a2b", "b2a"):
            raise UserError(f"direction must be a2b or b2a, got {direction!r}")
        name = "G_AB" if direction == "a2b" else "G_BA"
        net = model.inference_net(name)
        meta.update(inputs="images: (N, C, H, W) float32 in [0, 1]", direction=direction)
        meta["outputs"] = "images: (N, C, H, W) float32 in [0, 1]"
        example = {"images": torch.rand(2, *model.image_shape)}
        return Exported(_Translator(net.eval()), example, meta)
    from pixelsmith.edit.latent.space import latent_space

    space = latent_space(model, "z")
    conditional = bool(space.classes)
    example = {"z": torch.randn(2, space.dim)}
    meta.update(latent="z", latent_dim=str(space.dim), classes=str(space.classes))
    meta["inputs"] = "z: (N, latent_dim) float32 ~ N(0, I)" + (
        "; labels: (N,) int64 classes" if conditional else ""
    )
    meta["outputs"] = "images: (N, C, H, W) float32 in [0, 1]"
    if conditional:
        example["labels"] = torch.arange(2) % space.classes
    return Exported(_Generator(space.render, conditional).eval(), example, meta)


def _restoration(model: Any, meta: dict[str, str]) -> Exported:
    """The restoration network from its whole input (pixels and conditions) to its output."""
    c, h, w = model.image_shape
    example = model.network_input(torch.rand(2, c, h, w), *_conditions(model, h, w))
    meta.update(
        task=model.cfg.task,
        scale=str(model.out_scale),
        multiple=str(model.multiple),
        margin=str(model.margin),
        inputs=f"inputs: (N, {example.shape[1]}, H, W) float32, as Restore.network_input makes "
        f"them (H and W multiples of {model.multiple})",
        outputs="images: (N, C, H * scale, W * scale) float32, not yet clamped to [0, 1]",
    )
    return Exported(_Restorer(model.inference_net("net")).eval(), {"inputs": example}, meta)


def _conditions(model: Any, h: int, w: int) -> tuple[Tensor | None, float | None]:
    """An example mask (inpainting) and noise level (denoising) for the export's example."""
    if model.cfg.task == "inpaint":
        return (torch.rand(2, 1, h, w) > 0.7).float(), None
    return None, 25.0 if model.cfg.task == "denoise" else None


def _dynamic_shapes(job: Exported) -> dict[str, dict[int, Any]]:
    """A dynamic batch everywhere; a restoration network's height and width too."""
    batch = torch.export.Dim("batch", min=1)
    if "multiple" not in job.metadata:
        return {k: {0: batch} for k in job.inputs}
    k = int(job.metadata["multiple"])
    if k == 1:
        side = {2: torch.export.Dim("height", min=2), 3: torch.export.Dim("width", min=2)}
    else:
        side = {2: k * torch.export.Dim("h", min=1), 3: k * torch.export.Dim("w", min=1)}
    return {"inputs": {0: batch, **side}}


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise UserError(f"ONNX export needs the deploy extra: {INSTALL_HINT}") from None


def export_onnx(
    model: Family | str | os.PathLike, out: str | os.PathLike, direction: str = "a2b"
) -> Path:
    """Write `model`'s inference network to `out` (.onnx), weights and metadata inside."""
    from pixelsmith.generate.load import load_model

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"-o {out}: the export is an ONNX file; name it NAME.onnx")
    _require_onnx()
    m = model if isinstance(model, Family) else load_model(model)
    job = exportable(m.eval(), direction)
    shapes = _dynamic_shapes(job)
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" lines, by design
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's own deprecation chatter
        try:
            program = torch.onnx.export(
                job.module,
                kwargs=job.inputs,
                dynamo=True,
                dynamic_shapes=shapes,
                external_data=False,
                verbose=False,
                report=False,
            )
        except Exception as e:  # an op the exporter cannot translate: say which, not how
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise UserError(f"this {m.name} model did not export to ONNX: {first}") from None
        finally:
            quiet.setLevel(level)
    proto = program.model_proto
    for k, v in job.metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    import onnx

    onnx.save_model(proto, str(tmp))
    os.replace(tmp, out)
    return out


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata an exported file carries."""
    _require_onnx()
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise UserError(f"{path} is not a readable ONNX file ({e})") from None
    return {p.key: p.value for p in proto.metadata_props}


def check_onnx(
    model: Family | str | os.PathLike, path: str | os.PathLike, n: int = 4, seed: int = 0
) -> dict[str, Any]:
    """ONNX Runtime's output of `path` against eager PyTorch on the same random inputs."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(f"checking an export needs ONNX Runtime: {INSTALL_HINT}") from None
    from pixelsmith.generate.load import load_model

    m = model if isinstance(model, Family) else load_model(model)
    meta = read_metadata(path)
    job = exportable(m.eval(), meta.get("direction", "a2b"))
    g = torch.Generator().manual_seed(seed)
    feeds: dict[str, Tensor] = {}
    for k, v in job.inputs.items():
        if v.dtype == torch.long:
            feeds[k] = torch.randint(0, int(meta.get("classes") or 1), (n,), generator=g)
        elif k == "z":
            feeds[k] = torch.randn(n, *v.shape[1:], generator=g)
        else:
            feeds[k] = torch.rand(n, *v.shape[1:], generator=g)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, {k: feeds[k].numpy() for k in names})[0]
    with torch.no_grad():
        want = job.module(**feeds)
    diff = float((torch.from_numpy(got) - want).abs().max())
    return {"max_abs_diff": diff, "n": n, "inputs": names, "shape": list(got.shape)}
