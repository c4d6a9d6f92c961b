"""Compression measured honestly: int8 through ONNX Runtime, structured and unstructured
pruning, and distilled students, side by side with their teacher in one interleaved run.

Distillation itself is a training family (`pixelsmith.models.distill`, `pixelsmith compress`);
this module makes the other variants of a trained gan model and measures them all: parameters,
file size, batch-1 latency and batch throughput per backend (eager PyTorch and ONNX Runtime,
rounds interleaved as in backends.py), and FID from the same seeds and protocol as
`pixelsmith eval`. int8 uses ONNX Runtime's static QDQ quantisation (per-channel int8 weights,
uint8 activations calibrated on generator inputs) or its dynamic quantisation, on the exported
ONNX model; torch.ao.quantization is deprecated and not used.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pixelsmith.deploy.backends import Backend, build, interleaved, onnx_runner
from pixelsmith.deploy.export import INSTALL_HINT, export_onnx
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family
from pixelsmith.models.distill import student_model
from pixelsmith.models.distill_prune import prune_generator
from pixelsmith.models.gan import GAN

_FLAGS = {
    "AVX2": ("avx2",),
    "AVX-512": ("avx512f",),
    "AVX-512 VNNI": ("avx512_vnni",),
    "AVX-VNNI": ("avx_vnni",),
    "AMX-INT8": ("amx_int8",),
}


def cpu_capability(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, Any]:
    """The CPU's model and its int8-relevant vector extensions, from /proc/cpuinfo flags."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return {"model": "unknown (no /proc/cpuinfo)", **{k: None for k in _FLAGS}}
    flags: set[str] = set()
    model = "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "model name" and model == "unknown":
            model = value.strip()
    return {"model": model, **{k: any(f in flags for f in fs) for k, fs in _FLAGS.items()}}


def capability_line(cap: dict[str, Any]) -> str:
    """One line: the CPU and which int8 paths it has."""
    has = ", ".join(
        f"{k} {'yes' if v else 'no' if v is not None else '?'}"
        for k, v in cap.items()
        if k != "model"
    )
    return f"{cap['model']}: {has}"


# ---- variants of a gan model ---------------------------------------------------------------


def _generators(model: Family) -> list[nn.Module]:
    """The generator and its moving average, as far as the model has them."""
    return [model.networks[k] for k in model.with_average() if k in model.networks]


def structured_prune(model: GAN, width: float) -> GAN:
    """A gan model whose generators keep `width` of the channels with the largest L1 norm."""
    if not 0 < width < 1:
        raise UserError(f"a pruning width must be 0 < width < 1, got {width}")
    small = student_model(model.cfg, width, model.image_shape, model.num_classes)
    small.add_ema_copies()
    small.networks["D"] = copy.deepcopy(model.networks["D"])
    for k in small.with_average():  # each from its counterpart, else the inference net
        src = model.networks.get(k) or model.inference_net()
        small.networks[k] = prune_generator(src, small.networks[k])
    small.manifest = model.manifest
    return small.eval()


def magnitude_prune(model: GAN, amount: float) -> GAN:
    """A copy whose generator weights have their smallest `amount` (fraction, per layer) set to
    zero by torch.nn.utils.prune, masks made permanent: the same dense network, with zeros."""
    from torch.nn.utils import prune

    if not 0 < amount < 1:
        raise UserError(f"a pruning amount must be 0 < amount < 1, got {amount}")
    out = copy.deepcopy(model)
    for g in _generators(out):
        for m in g.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                prune.l1_unstructured(m, "weight", amount)
                prune.remove(m, "weight")
    return out


def zero_fraction(model: Family) -> float:
    """The fraction of the inference generator's weights that are exactly zero."""
    g = model.inference_net()
    ws = [p for n, p in g.named_parameters() if n.endswith("weight") and p.dim() > 1]
    return float(sum((w == 0).sum() for w in ws) / sum(w.numel() for w in ws))


# ---- int8 through ONNX Runtime -------------------------------------------------------------


def _ort():
    try:
        import onnxruntime as ort
        import onnxruntime.quantization as q
    except ImportError:
        raise UserError(f"int8 quantisation needs ONNX Runtime: {INSTALL_HINT}") from None
    return ort, q


def calibration_inputs(
    z_dim: int, n: int = 256, batch: int = 32, seed: int = 1, classes: int = 0
) -> list[dict[str, Tensor]]:
    """Generator inputs for calibration, as the sampler draws them: z ~ N(0, I) (seeded apart
    from the evaluation's) and, for a conditional generator, every class in turn."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        feeds = {"z": torch.randn(min(batch, n - i), z_dim, generator=g)}
        if classes:
            feeds["labels"] = (torch.arange(len(feeds["z"])) + i) % classes
        out.append(feeds)
    return out


INT8_OPS = (
    "QLinearConv",
    "QGemm",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "DynamicQuantizeMatMul",
)
FLOAT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "FusedConv", "FusedGemm")


def compute_ops(path: str | Path) -> dict[str, dict[str, int]]:
    """The compute operators ONNX Runtime actually runs for an ONNX file (its optimised graph),
    split into those in int8 and those in fp32: a QDQ model whose deconvolutions have no int8
    kernel runs them in fp32 between quantise and dequantise nodes."""
    import tempfile
    from collections import Counter

    import onnx

    ort, _ = _ort()
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        ops = Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)
    kinds = {"int8": {}, "fp32": {}}
    for op, k in sorted(ops.items()):
        if op in INT8_OPS:
            kinds["int8"][op] = k
        elif op in FLOAT_OPS:
            kinds["fp32"][op] = k
    return kinds


def ops_note(kinds: dict[str, dict[str, int]]) -> str:
    """compute_ops as a short text for a table's note."""
    return "; ".join(
        f"{kind}: " + (", ".join(f"{op} x{k}" for op, k in ops.items()) or "none")
        for kind, ops in kinds.items()
    )


def quantize_int8(
    fp32: str | Path,
    out: str | Path,
    mode: str = "static",
    calibration: Sequence[dict[str, Tensor]] = (),
) -> Path:
    """Write the int8 version of an exported generator: static QDQ (calibrated on
    `calibration`, batches of the generator's inputs) or dynamic (int8 weights for the ops
    ONNX Runtime quantises dynamically; compute_ops says which those are)."""
    ort, q = _ort()
    fp32, out = Path(fp32), Path(out)
    if mode == "dynamic":
        q.quantize_dynamic(str(fp32), str(out), weight_type=q.QuantType.QInt8)
        return out
    if mode != "static":
        raise UserError(f"int8 mode must be static or dynamic, got {mode!r}")
    if not calibration:
        raise UserError("static int8 needs calibration inputs (batches of z)")
    session = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    missing = [n for n in names if n not in calibration[0]]
    if missing:
        raise UserError(f"the calibration inputs lack {', '.join(missing)}")

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{k: feeds[k].numpy() for k in names} for feeds in calibration])

        def get_next(self) -> dict | None:
            return next(self.it, None)

    pre = out.with_name(out.stem + ".pre.onnx")
    try:
        q.quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        src = pre
    except Exception:  # noqa: BLE001 - pre-processing is an optimisation, not required
        src = fp32
    q.quantize_static(
        str(src),
        str(out),
        Reader(),
        quant_format=q.QuantFormat.QDQ,
        per_channel=True,
        activation_type=q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8,
    )
    pre.unlink(missing_ok=True)
    return out


def ort_backend(path: str | Path, name: str = "onnxruntime") -> Backend:
    """An ONNX Runtime backend over an ONNX file (z -> images in [0, 1])."""
    t0 = time.perf_counter()
    return Backend(name, onnx_runner(path), time.perf_counter() - t0)


class _BackendGenerator(nn.Module):
    """A backend seen as a GAN generator (z -> images in [-1, 1]) so the GAN sampler and the
    evaluation run it unchanged."""

    def __init__(self, backend: Backend):
        super().__init__()
        self.backend = backend

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        feeds = {"z": z} if labels is None else {"z": z, "labels": labels}
        return self.backend.run(feeds) * 2 - 1


def as_model(model: GAN, backend: Backend) -> GAN:
    """A copy of `model` whose generator is `backend` (for sampling and FID)."""
    out = copy.copy(model)
    gen = _BackendGenerator(backend)
    out.networks = {**model.networks, **dict.fromkeys(model.with_average(), gen)}
    return out


# ---- the measurement -----------------------------------------------------------------------


@dataclass
class Variant:
    """One compressed (or not) model: a gan model, and the ONNX file int8 runs from."""

    name: str
    model: GAN
    int8: str = ""  # "", "static" or "dynamic": run only in ONNX Runtime, quantised
    note: str = ""


@dataclass
class Row:
    """One variant on one backend."""

    variant: str
    backend: str
    params: int
    file_mb: float
    p50_ms: float | None = None
    images_per_s: float | None = None
    fid: float | None = None
    note: str = ""
    samples_ms: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "samples_ms"}
        return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in d.items()}


def _params(model: Family) -> int:
    g = model.inference_net()
    return sum(p.numel() for p in g.parameters())


def fid(model: Family, n: int = 10_000, seed: int = 0) -> float:
    """FID of `model`'s samples as `pixelsmith eval --metrics fid` computes it."""
    from pixelsmith.metrics.evaluate import evaluate_model

    return float(evaluate_model(model, "fid", n=n, seed=seed)[0].value)


def measure(
    variants: Sequence[Variant],
    workdir: str | Path,
    backends: Sequence[str] = ("eager", "onnxruntime"),
    rounds: int = 50,
    batch: int = 64,
    throughput_rounds: int = 5,
    fid_n: int = 10_000,
    log: Any = None,
) -> list[Row]:
    """Every variant on every backend (int8 variants in ONNX Runtime only), timed round by
    round in rotating order; FID per variant from its eager model (int8: from ONNX Runtime)."""
    workdir = Path(workdir)
    g = torch.Generator().manual_seed(0)
    z_dim = variants[0].model.latent_spec("z").dim
    one = {"z": torch.randn(1, z_dim, generator=g)}
    big = {"z": torch.randn(batch, z_dim, generator=g)}
    rows: list[Row] = []
    runs: list[tuple[Row, Backend]] = []
    for i, v in enumerate(variants):
        d = workdir / f"{i:02d}"
        d.mkdir(parents=True, exist_ok=True)
        fp32 = export_onnx(v.model, d / "model.onnx")
        names = ["onnxruntime"] if v.int8 else list(backends)
        for b in names:
            path = fp32
            try:
                if v.int8:
                    feeds = calibration_inputs(z_dim, classes=v.model.classes)
                    path = quantize_int8(fp32, d / "int8.onnx", v.int8, feeds)
                    backend = ort_backend(path)
                    v.note = "; ".join(x for x in (v.note, ops_note(compute_ops(path))) if x)
                else:
                    backend = build(b, v.model, d / b)
                row = Row(v.name, b, _params(v.model), path.stat().st_size / 2**20, note=v.note)
                backend.run(one), backend.run(big)  # warm both shapes
                runs.append((row, backend))
            except Exception as e:  # noqa: BLE001 - a variant that fails is reported, not fatal
                row = Row(v.name, b, _params(v.model), fp32.stat().st_size / 2**20)
                row.note = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            rows.append(row)
        if log:
            log(f"built {v.name}")
    ms, secs = interleaved([b.run for _, b in runs], one, big, rounds, throughput_rounds)
    times: dict[int, list[float]] = {}
    for (row, _), samples, sec in zip(runs, ms, secs, strict=True):
        row.samples_ms, times[id(row)] = samples, sec
    for row, _ in runs:
        row.p50_ms = statistics.median(row.samples_ms)
        row.images_per_s = batch / statistics.median(times[id(row)])
    if fid_n:
        for v in variants:
            mine = [(r, b) for r, b in runs if r.variant == v.name]
            if not mine:
                continue
            model = as_model(v.model, mine[0][1]) if v.int8 else v.model
            score = fid(model, fid_n)
            for r, _ in mine:
                r.fid = score
            if log:
                log(f"FID {v.name}: {score:.3f}")
    return rows


def table(rows: Sequence[Row], batch: int = 64, teacher: str = "teacher") -> str:
    """The rows as Markdown, speed-ups against the teacher on the same backend."""
    base = {r.backend: r for r in rows if r.variant == teacher}
    fid0 = next((r.fid for r in rows if r.variant == teacher and r.fid), None)
    lines = [
        f"| variant | backend | params | file MB | p50 ms (batch 1) | x teacher (batch 1) | "
        f"images/s (batch {batch}) | x teacher (batch {batch}) | FID | FID / teacher | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = base.get(r.backend) or base.get("onnxruntime")
        if r.p50_ms is None or t is None or t.p50_ms is None:
            lines.append(
                f"| {r.variant} | {r.backend} | {r.params:,} | {r.file_mb:.2f} | "
                + "– | " * 6
                + f"{r.note} |"
            )
            continue
        f = f"{r.fid:.2f}" if r.fid is not None else "–"
        ratio = f"{r.fid / fid0:.2f}" if r.fid is not None and fid0 else "–"
        lines.append(
            f"| {r.variant} | {r.backend} | {r.params:,} | {r.file_mb:.2f} | {r.p50_ms:.3f} | "
            f"{t.p50_ms / r.p50_ms:.2f} | {r.images_per_s:.0f} | "
            f"{r.images_per_s / t.images_per_s:.2f} | {f} | {ratio} | {r.note} |"
        )
    return "\n".join(lines)
