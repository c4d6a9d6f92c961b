"""The backend one served generator runs through, timed once and remembered.

`--backend auto` times the latency ladder (eager, channels_last, torch.compile, ONNX Runtime) at
batch 1 and takes the fastest that agrees with eager. That costs seconds to minutes (torch.compile
compiles, ONNX Runtime exports first), so the choice is remembered in the cache folder
(backends.json), keyed by everything that can change it: the model's payload hash, the CPU (its
name and the instruction sets that change kernels), torch's thread count, the torch, onnxruntime
and pixelsmith versions and the candidates. A later start with the same key only builds the
chosen backend, from the exported .onnx file kept beside it (keyed by payload hash and the
pixelsmith and torch versions). A cache that cannot be read is ignored and rewritten; a
remembered backend that no longer builds, or no longer agrees with eager, is timed again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import torch

import pixelsmith
from pixelsmith.data.sources import cache_dir
from pixelsmith.deploy import backends as ladder
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family
from pixelsmith.utils.files import atomic_write_bytes

Say = Callable[[str], None]
CACHE_FILE = "backends.json"
ONNX_FOLDER = "onnx"
FORMAT = 1
KEEP = 64  # remembered choices; the oldest go first
ROUNDS = 12  # batch-1 calls per backend when timing
# instruction sets that make oneDNN / ONNX Runtime pick other kernels
ISA = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
)
_PREPARING = {
    "compile": " (torch.compile compiles on its first call: a minute or more)",
    "onnxruntime": " (exports the network to ONNX first)",
}


class Choice(NamedTuple):
    """The backend a model is served through (None: the model's own eager sampling), a
    one-line description with the reason on a fallback to eager, and whether the choice was
    remembered from an earlier start instead of timed now."""

    backend: ladder.Backend | None
    description: str
    remembered: bool = False

    @property
    def name(self) -> str:
        return self.backend.name if self.backend is not None else "eager"


def choose_backend(
    model: Family,
    backend: str = "auto",
    candidates: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
    cache: bool = True,
    retime: bool = False,
) -> Choice:
    """The backend to serve `model` through: `backend` itself, or with "auto" the fastest of
    `candidates` (default: the whole ladder) at batch 1 among those agreeing with eager,
    remembered in the cache folder (`cache`; `retime` times again and remembers anew). Progress
    goes to `log`, one line at a time."""
    say = log or (lambda line: None)
    names = tuple(dict.fromkeys(candidates or ladder.BACKENDS))
    for b in (backend, *names):
        if b != "auto" and b not in ladder.BACKENDS:
            raise UserError(f"unknown backend {b!r}; use auto or {', '.join(ladder.BACKENDS)}")
    if not names:
        raise UserError(f"give at least one backend to choose from: {', '.join(ladder.BACKENDS)}")
    model = model.eval()
    if backend != "auto":
        try:
            return Choice(_build(backend, model, cache, say), backend)
        except UserError as e:
            return Choice(None, f"eager ({e})")
    key = choice_key(model, names) if cache else None
    if key is not None and not retime:
        remembered = _remembered(key, names, say)
        if remembered is not None:
            say(f"building {remembered}, chosen at an earlier start on this CPU and thread count")
            try:
                built = _build(remembered, model, cache, say)
                return Choice(built, f"{remembered} (remembered from an earlier start)", True)
            except UserError as e:
                say(f"the remembered {remembered} does not serve any more ({e}); timing again")
    return _timed(model, names, key, cache, say)


def _timed(
    model: Family, names: tuple[str, ...], key: dict[str, Any] | None, cache: bool, say: Say
) -> Choice:
    """Time the ladder, build its pick and remember it under `key` (None: do not)."""
    order = ["eager", *[b for b in names if b != "eager"]]
    why = (
        "once; the choice is remembered"
        if key is not None
        else "every start: "
        + ("the cache is off" if not cache else "the model has no payload hash to remember it by")
    )
    say(f"timing {', '.join(order)} at batch 1 ({why})")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            rows = ladder.latency(
                model,
                names,
                rounds=ROUNDS,
                batch=1,
                throughput_rounds=1,
                progress=lambda b: say(f"  preparing {b}{_PREPARING.get(b, '')}"),
                workdir=Path(tmp),
            )
        except UserError as e:
            return Choice(None, f"eager ({e})")
        for r in rows:
            say("  " + _row_line(r))
        pick = ladder.fastest(rows, by="p50_ms")
        say(f"chose {pick}: the fastest at batch 1 of those that agree with eager")
        eager = rows[0].p50_ms or 0.0
        fast = next(r for r in rows if r.backend == pick).p50_ms or 0.0
        exported = Path(tmp) / "model.onnx"
        try:
            built = _build(pick, model, cache, say, exported if exported.exists() else None)
        except UserError as e:
            return Choice(None, f"eager ({pick} was fastest but did not build again: {e})")
    if key is not None:
        _remember(key, pick, {r.backend: r.p50_ms and round(r.p50_ms, 4) for r in rows}, say)
    if pick == "eager":
        return Choice(None, f"eager (the fastest agreeing backend at batch 1: p50 {eager:.2f} ms)")
    return Choice(built, f"{pick} (p50 {fast:.2f} ms at batch 1, eager {eager:.2f} ms)")


def _row_line(r: ladder.LatencyRow) -> str:
    if r.p50_ms is None:
        return f"{r.backend}: not available ({r.note})"
    if r.backend == "eager":
        return f"eager: p50 {r.p50_ms:.2f} ms (the reference)"
    verdict = "agrees with eager" if r.agrees else f"DISAGREES with eager (> {ladder.AGREE:g})"
    return f"{r.backend}: p50 {r.p50_ms:.2f} ms, {verdict} (max diff {r.max_abs_diff:.1e})"


def _build(
    name: str, model: Family, keep: bool, say: Say, exported: Path | None = None
) -> ladder.Backend | None:
    """The built backend (None for eager), checked against eager; UserError if it cannot be had
    or disagrees. ONNX Runtime loads `exported` (a fresh export of this model) when given, else
    the export kept in the cache folder (`keep`), else exports; a fresh export is kept."""
    if name == "eager":
        return None
    kept = _onnx_path(model) if keep and name == "onnxruntime" else None
    with tempfile.TemporaryDirectory() as tmp:
        if exported is None and kept is not None and kept.exists():
            try:
                return _checked(_made(name, model, Path(tmp), kept), model)
            except UserError as e:  # a corrupt or stale file: export again
                say(f"  the kept ONNX export {kept} did not serve ({e}); exporting again")
                kept.unlink(missing_ok=True)
        fresh = exported if name == "onnxruntime" else None
        backend = _checked(_made(name, model, Path(tmp), fresh), model)
        if kept is not None:
            _keep_onnx(fresh or Path(tmp) / "model.onnx", kept, say)
        return backend


def _made(name: str, model: Family, workdir: Path, onnx_file: Path | None) -> ladder.Backend:
    try:
        return ladder.build(name, model, workdir, onnx_file)
    except UserError:
        raise
    except Exception as e:  # a backend that breaks on this model or this machine
        raise UserError(f"{name} did not build: {_first_line(e)}") from None


def _checked(backend: ladder.Backend, model: Family) -> ladder.Backend:
    try:
        diff = ladder.max_diff(backend, model)
    except Exception as e:  # a backend that breaks on its first call
        raise UserError(f"{backend.name} failed on its first call: {_first_line(e)}") from None
    if not diff <= ladder.AGREE:
        raise UserError(f"{backend.name}'s images differ from eager's by {diff:.1e}")
    return backend


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def choice_key(model: Family, candidates: Sequence[str]) -> dict[str, Any] | None:
    """What a remembered choice for `model` depends on; None when the model has no payload
    hash (it is then timed at every start)."""
    payload = model.manifest.get("payload_sha256") if model.manifest else None
    if not payload:
        return None
    return {
        "payload_sha256": str(payload),
        "cpu": cpu_signature(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "pixelsmith": pixelsmith.__version__,
        "candidates": sorted(candidates),
    }


def _key_id(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def cpu_signature() -> str:
    """The CPU's model name and the instruction sets among `ISA` it has."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            field, _, value = line.partition(":")
            field = field.strip().lower()
            if field in ("model name", "hardware", "cpu model") and not name:
                name = value.strip()
            elif field in ("flags", "features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    name = name or platform.processor() or "unknown cpu"
    return f"{name} ({platform.machine()}: {' '.join(f for f in ISA if f in flags) or 'no flags'})"


def _cache_file() -> Path:
    return cache_dir() / CACHE_FILE


def _load(say: Say) -> dict[str, Any]:
    """The remembered entries, {} when there are none or the file is unreadable."""
    path = _cache_file()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        say(f"ignoring the unreadable backend cache {path} ({_first_line(e)}); it is rewritten")
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or data.get("format") != FORMAT:
        say(f"ignoring the backend cache {path}: not in this version's format; it is rewritten")
        return {}
    return entries


def _remembered(key: dict[str, Any], names: tuple[str, ...], say: Say) -> str | None:
    entry = _load(say).get(_key_id(key))
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    pick = entry.get("backend")
    return pick if pick in names or pick == "eager" else None


def _remember(key: dict[str, Any], pick: str, p50: dict[str, float | None], say: Say) -> None:
    """Add the choice to the cache file (atomically); a failure to write is said, not raised."""
    entries = _load(lambda line: None)
    entries[_key_id(key)] = {"key": key, "backend": pick, "p50_ms": p50, "saved": time.time()}
    newest = sorted(entries.items(), key=lambda kv: _saved(kv[1]), reverse=True)[:KEEP]
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, "entries": dict(newest)}, indent=1, sort_keys=True)
        atomic_write_bytes(path, text.encode())
        say(f"remembered {pick} for the next start in {path}")
    except OSError as e:
        say(f"could not remember the choice in {path} ({_first_line(e)})")


def _saved(entry: Any) -> float:
    t = entry.get("saved") if isinstance(entry, dict) else None
    return float(t) if isinstance(t, (int, float)) else 0.0


def _onnx_path(model: Family) -> Path | None:
    """Where `model`'s exported network is kept (None without a payload hash)."""
    payload = str(model.manifest.get("payload_sha256") or "")
    if not payload:
        return None
    versions = hashlib.sha256(f"{pixelsmith.__version__} {torch.__version__}".encode())
    name = f"{payload[:32]}-{versions.hexdigest()[:12]}.onnx"
    return cache_dir() / ONNX_FOLDER / name


def _keep_onnx(exported: Path, target: Path, say: Say) -> None:
    """Copy an export into the cache folder (atomically); a failure is said, not raised."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, exported.read_bytes())
    except OSError as e:
        say(f"  could not keep the ONNX export in {target} ({_first_line(e)})")
