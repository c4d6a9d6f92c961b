"""The inference backend ladder and its latency table: eager (the reference), channels_last,
torch.compile and ONNX Runtime, measured interleaved in one run.

Each backend runs the same exported network (`export.exportable`: z -> images for generators,
images -> images for translators). A backend that is not installed, or that fails to build, is
reported with its reason instead of numbers; one whose output differs from eager by more than
`AGREE` is marked as not agreeing, and `fastest` never picks it.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pixelsmith.deploy.export import export_onnx, exportable
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family

BACKENDS = ("eager", "channels_last", "compile", "onnxruntime")
AGREE = 1e-3  # max |difference| from eager, images in [0, 1]


@dataclass
class Backend:
    """A built backend: `run` maps the network's inputs to images."""

    name: str
    run: Callable[[dict[str, Tensor]], Tensor]
    build_s: float
    note: str = ""


def _inputs(model: Family, n: int, seed: int, size: int | None = None) -> dict[str, Tensor]:
    """n random inputs like the export's example; a restoration network's `size` x `size`
    pixels (rounded up to its stride) instead of the training patch's."""
    job = exportable(model)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in job.inputs.items():
        if size is not None and k == "inputs":
            stride = int(job.metadata["multiple"])
            side = -(-size // stride) * stride
            out[k] = torch.rand(n, v.shape[1], side, side, generator=g)
            continue
        if v.dtype == torch.long:
            out[k] = torch.randint(0, int(job.metadata["classes"]), (n,), generator=g)
        elif k == "z":
            out[k] = torch.randn(n, *v.shape[1:], generator=g)
        else:
            out[k] = torch.rand(n, *v.shape[1:], generator=g)
    return out


def build(name: str, model: Family, workdir: Path, onnx_file: Path | None = None) -> Backend:
    """Build one backend for `model`'s network (UserError when it cannot be had here); ONNX
    Runtime loads `onnx_file`, an earlier export of this model, when given, else exports to
    `workdir`/model.onnx."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; use {', '.join(BACKENDS)}")
    t0 = time.perf_counter()
    job = exportable(model)
    net = job.module.eval()
    if name == "eager":
        fn = net
    elif name == "channels_last":
        fn = copy.deepcopy(net).to(memory_format=torch.channels_last)
    elif name == "compile":
        fn = torch.compile(copy.deepcopy(net), dynamic=False)
    else:
        ort_run = onnx_runner(onnx_file or export_onnx(model, workdir / "model.onnx"))
        fn = lambda **feeds: ort_run(feeds)  # noqa: E731

    def run(feeds: dict[str, Tensor]) -> Tensor:
        with torch.inference_mode():
            return fn(**feeds)

    return Backend(name, run, time.perf_counter() - t0)


def onnx_runner(path: str | Path) -> Callable[[dict[str, Tensor]], Tensor]:
    """An ONNX Runtime session over an ONNX file as feeds -> the first output, at torch's
    intra-op thread count."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("onnxruntime is not installed (pip install 'pixelsmith[deploy]')") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(feeds: dict[str, Tensor]) -> Tensor:
        return torch.from_numpy(session.run(None, {k: feeds[k].numpy() for k in names})[0])

    return run


def max_diff(backend: Backend, model: Family, n: int = 1, seed: int = 0) -> float:
    """The largest |difference| of `backend`'s images from eager's on n random inputs."""
    feeds = _inputs(model, n, seed)
    with torch.inference_mode():
        reference = exportable(model).module.eval()(**feeds)
    return float((backend.run(feeds) - reference).abs().max())


def interleaved(
    runs: Sequence[Callable[[dict[str, Tensor]], Any]],
    one: dict[str, Tensor],
    big: dict[str, Tensor],
    rounds: int,
    throughput_rounds: int,
) -> tuple[list[list[float]], list[list[float]]]:
    """Each run timed on `one` (ms per call, `rounds` calls) and on `big` (s per call), round by
    round with the order rotating, so no run always goes first."""
    ms: list[list[float]] = [[] for _ in runs]
    secs: list[list[float]] = [[] for _ in runs]
    order = list(range(len(runs)))
    for total, feeds, out, scale in ((rounds, one, ms, 1000), (throughput_rounds, big, secs, 1)):
        for i in range(total):
            k = i % len(order)
            for j in order[k:] + order[:k]:
                t0 = time.perf_counter()
                runs[j](feeds)
                out[j].append(scale * (time.perf_counter() - t0))
    return ms, secs


@dataclass
class LatencyRow:
    """One backend's numbers (or why it has none)."""

    backend: str
    first_call_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    images_per_s: float | None = None
    max_abs_diff: float | None = None
    agrees: bool = False
    note: str = ""
    samples_ms: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "samples_ms"}
        return {
            k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in d.items()
        }  # 4 significant digits: a 1e-7 difference stays visible


def latency(
    model: Family,
    backends: Sequence[str] = BACKENDS,
    rounds: int = 30,
    batch: int = 64,
    throughput_rounds: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    workdir: Path | None = None,
    size: int | None = None,
) -> list[LatencyRow]:
    """Batch-1 latency (p50, p99 over `rounds`), images/s at `batch`, first-call cost and
    agreement with eager, every backend interleaved round by round; `progress` is told each
    backend's name before it is built, and the backends' files (model.onnx) go to `workdir`
    (default: a temporary folder). A restoration network runs on `size` x `size` inputs
    (default: its training patch)."""
    if rounds < 2 or batch < 1 or throughput_rounds < 1:
        raise UserError("rounds must be >= 2, batch and throughput rounds >= 1")
    names = ["eager", *[b for b in backends if b != "eager"]]
    model = model.eval()
    one, big = _inputs(model, 1, seed, size), _inputs(model, batch, seed + 1, size)
    rows = {n: LatencyRow(n) for n in names}
    built: dict[str, Backend] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            if progress is not None:
                progress(n)
            try:
                b = build(n, model, workdir or Path(tmp))
                t0 = time.perf_counter()
                b.run(one)  # the first call pays for compilation / session start
                rows[n].first_call_s = b.build_s + time.perf_counter() - t0
                b.run(big), b.run(one)  # warm both shapes (compile specialises on each)
                built[n] = b
            except UserError as e:
                rows[n].note = str(e)
            except Exception as e:  # a backend that breaks on this model: reported, not fatal
                rows[
                    n
                ].note = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        reference = built["eager"].run(big)
        for n, b in built.items():
            diff = float((b.run(big) - reference).abs().max())
            rows[n].max_abs_diff, rows[n].agrees = diff, diff <= AGREE
        ms, secs = interleaved([b.run for b in built.values()], one, big, rounds, throughput_rounds)
        for n, samples in zip(built, ms, strict=True):
            rows[n].samples_ms = samples
        times = dict(zip(built, secs, strict=True))
    for n in built:
        s = sorted(rows[n].samples_ms)
        rows[n].p50_ms = statistics.median(s)
        rows[n].p99_ms = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
        rows[n].images_per_s = batch / statistics.median(times[n])
    return [rows[n] for n in names]


def fastest(rows: Sequence[LatencyRow], by: str = "images_per_s") -> str:
    """The backend that agrees with eager and has the best `by` (eager if none beats it)."""
    ok = [r for r in rows if r.agrees and getattr(r, by) is not None]
    if not ok:
        return "eager"
    if by == "images_per_s":
        return max(ok, key=lambda r: r.images_per_s).backend
    return min(ok, key=lambda r: getattr(r, by)).backend


def table(rows: Sequence[LatencyRow], batch: int) -> str:
    """The rows as a Markdown table with ratios to eager."""
    eager = next(r for r in rows if r.backend == "eager")
    lines = [
        f"| backend | first call s | p50 ms (batch 1) | p99 ms | x eager (batch 1) | images/s "
        f"(batch {batch}) | x eager | max diff | agrees |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.p50_ms is None:
            lines.append(f"| {r.backend} | – | – | – | – | – | – | – | {r.note} |")
            continue
        lines.append(
            f"| {r.backend} | {r.first_call_s:.2f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | "
            f"{eager.p50_ms / r.p50_ms:.2f} | {r.images_per_s:.0f} | "
            f"{r.images_per_s / eager.images_per_s:.2f} | {r.max_abs_diff:.1e} | "
            f"{'yes' if r.agrees else 'NO'} |"
        )
    return "\n".join(lines)
