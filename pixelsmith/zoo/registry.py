"""The zoo's index: entries, checksums, export of a trained run, and the re-make check.

The zoo is a folder holding `index.json` and `weights/NAME.safetensors`: the package's own
folder, or the one `PIXELSMITH_ZOO` names (tests and people who keep their own zoo). The index is
the single source of what the zoo holds; nothing else lists entries.

A zoo file is an ordinary pixelsmith checkpoint (`pixelsmith.utils.checkpoint_file`) that keeps
only the networks (`net/...`) and the manifest's description of the model; the optimisers, random
generators and data position of a training checkpoint are dropped, and so is each network whose
moving average is there (`Family.from_checkpoint` fills it from the average). Every other network
stays, because a fine-tuned run (`--init zoo:NAME`, FreezeD) starts from the discriminator too.
The recorded config's budget is the run's step count, so `pixelsmith train zoo:NAME` re-makes it
step for step whatever budget (minutes, resumes) the original run had.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pixelsmith.errors import UserError, warn
from pixelsmith.models import family_class, resolve_preset
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.utils.files import atomic_write_bytes, sha256_file

FORMAT = "pixelsmith-zoo/1"
PREFIX = "zoo:"
ENV = "PIXELSMITH_ZOO"
# A zoo file above this size is exported with a warning: the zoo ships inside the package.
MAX_BYTES = 8 * 2**20
# A re-made run's result is "within tolerance" when it is this close to the entry's, relative
# to the entry's value, unless the entry's results name a tolerance for that metric.
DEFAULT_REL_TOLERANCE = 0.1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Manifest entries of a training checkpoint that a zoo file leaves out (resume state).
_DROPPED = ("resume", "batches")


@dataclass(frozen=True)
class Entry:
    """One model of the zoo, as its index entry describes it."""

    name: str
    file: Path
    sha256: str
    family: str
    preset: str
    task: str
    recipe: dict[str, Any]
    results: dict[str, Any]
    payload_sha256: str = ""
    size_bytes: int = 0
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ref(self) -> str:
        """How the entry is named wherever a run or checkpoint is accepted."""
        return PREFIX + self.name

    def headline(self) -> str:
        """The entry's headline result, e.g. "fid 9.07" ("-" when it records none)."""
        metrics = self.results.get("metrics") or {}
        key = self.results.get("headline") or next(iter(metrics), None)
        if key is None or key not in metrics:
            return "-"
        return f"{key} {metrics[key]:.4g}"


def root(where: str | Path | None = None) -> Path:
    """The zoo folder: `where`, else $PIXELSMITH_ZOO, else the one shipped in the package."""
    if where is not None:
        return Path(where)
    env = os.environ.get(ENV)
    return Path(env) if env else Path(__file__).parent


def zoo_name(target: str | Path) -> str | None:
    """NAME for a "zoo:NAME" reference, None for anything else (a run folder or checkpoint)."""
    text = str(target)
    return text[len(PREFIX) :] if isinstance(target, str) and text.startswith(PREFIX) else None


def resolve(target: str | Path, where: str | Path | None = None) -> Path:
    """The checkpoint file of a run folder, a checkpoint file or "zoo:NAME" (checksum verified)."""
    name = zoo_name(target)
    return path(name, where) if name is not None else ckf.resolve_checkpoint(target)


# ---- reading the index ---------------------------------------------------------------------


def _index_path(where: Path) -> Path:
    return where / "index.json"


def _read_index(where: Path) -> dict[str, Any]:
    p = _index_path(where)
    if not p.exists():
        return {"format": FORMAT, "models": {}}
    try:
        data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"the zoo index {p} is not valid JSON; reinstall pixelsmith") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{p} is not a pixelsmith zoo index (format {FORMAT!r} expected)")
    data.setdefault("models", {})
    return data


def _entry(name: str, rec: dict[str, Any], where: Path) -> Entry:
    return Entry(
        name=name,
        file=where / rec["file"],
        sha256=rec["sha256"],
        family=rec["family"],
        preset=rec.get("preset", rec["family"]),
        task=rec.get("task", ""),
        recipe=rec.get("recipe", {}),
        results=rec.get("results", {}),
        payload_sha256=rec.get("payload_sha256", ""),
        size_bytes=int(rec.get("size_bytes", 0)),
        record=rec,
    )


def entries(where: str | Path | None = None) -> dict[str, Entry]:
    """Every model of the zoo by name, in the index's order."""
    folder = root(where)
    return {k: _entry(k, v, folder) for k, v in _read_index(folder)["models"].items()}


def entry(name: str, where: str | Path | None = None) -> Entry:
    """The zoo entry called `name` ("zoo:NAME" works too); an unknown name names close ones."""
    name = zoo_name(name) or str(name)
    found = entries(where)
    if name in found:
        return found[name]
    close = difflib.get_close_matches(name, list(found), n=3, cutoff=0.5)
    if close:
        hint = f" (did you mean {' or '.join(close)}?)"
    elif not found:
        hint = f" (the zoo in {root(where)} holds no models yet)"
    else:
        hint = ""
    raise UserError(f"no zoo model is named {name!r}{hint}; `pixelsmith zoo list` shows them all")


def _check_file(e: Entry) -> str | None:
    """Why the entry's file cannot be used (missing, damaged), or None when it is intact."""
    if not e.file.is_file():
        return f"its file {e.file} is missing"
    got = sha256_file(e.file)
    if got != e.sha256:
        return f"{e.file} has sha256 {got[:16]}..., the index says {e.sha256[:16]}..."
    return None


def path(name: str, where: str | Path | None = None) -> Path:
    """The checkpoint file of zoo model `name`, after checking its sha256 against the index."""
    e = entry(name, where)
    why = _check_file(e)
    if why is not None:
        raise UserError(
            f"zoo model {e.name} is damaged ({why}); reinstall pixelsmith to restore it"
        )
    return e.file


def verify(where: str | Path | None = None) -> list[tuple[str, bool, str]]:
    """(name, ok, why) for every zoo model: its file is present and has the index's sha256."""
    out = []
    for name, e in entries(where).items():
        why = _check_file(e)
        out.append((name, why is None, why or f"sha256 {e.sha256[:16]}... as indexed"))
    return out


# ---- adding a model ------------------------------------------------------------------------


def inference_tensors(
    tensors: dict[str, torch.Tensor], ema_pairs: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """The networks' tensors of a checkpoint (`net/...`), without optimiser or RNG state, and
    without a network whose moving average is there (loading fills it from the average)."""
    drop = tuple(
        f"net/{src}/"
        for src, avg in (ema_pairs or {}).items()
        if any(k.startswith(f"net/{avg}/") for k in tensors)
    )
    return {k: v for k, v in tensors.items() if k.startswith("net/") and not k.startswith(drop)}


def _check_recipe(recipe: dict[str, Any], results: dict[str, Any]) -> None:
    if not isinstance(recipe.get("command"), str):
        raise UserError("a zoo recipe needs its 'command': the exact `pixelsmith train ...` line")
    if "data" not in recipe:
        raise UserError("a zoo recipe needs its 'data': what the model was trained on")
    files = recipe["data"].get("files", []) if isinstance(recipe["data"], dict) else []
    for f in files:
        if not (isinstance(f, dict) and isinstance(f.get("sha256"), str)):
            raise UserError(f"each training file of a zoo recipe needs its sha256, got {f!r}")
    metrics = results.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise UserError("zoo results need 'metrics': a mapping of metric names to values")
    bad = [k for k, v in metrics.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
    if bad:
        raise UserError(f"zoo result {bad[0]!r} must be a number, got {metrics[bad[0]]!r}")
    if not isinstance(results.get("command"), str):
        raise UserError("zoo results need the 'command' that measured them")


def _where_from(ckpt: Path) -> str:
    """A checkpoint's run folder and file name, without the machine's own path."""
    parts = ckpt.parts[-3:] if ckpt.parent.name == "checkpoints" else ckpt.parts[-1:]
    return "/".join(parts)


def _about(man: dict[str, Any]) -> str:
    """The preset's one-line description, the default task of an entry."""
    try:
        return resolve_preset(str(man.get("preset")))[1].about
    except UserError:
        return f"a {man.get('family')} model"


def export_run(
    run_or_ckpt: str | Path,
    name: str,
    recipe: dict[str, Any],
    results: dict[str, Any],
    out_dir: str | Path | None = None,
    task: str | None = None,
) -> Path:
    """Write the zoo file of a trained run (its newest checkpoint) as `name` and add or update
    its index entry; the recipe gets the run's resolved config (what `pixelsmith train
    zoo:NAME` runs), seed and steps. Returns the written file."""
    if not _NAME.match(name):
        raise UserError(
            f"zoo name {name!r} must be lower-case letters, digits, '.', '_' or '-' (at most 64)"
        )
    _check_recipe(recipe, results)
    ckpt = ckf.resolve_checkpoint(run_or_ckpt)
    tensors, man = ckf.load_checkpoint(ckpt)
    fam = family_class(str(man.get("family")))
    slim = inference_tensors(tensors, fam.ema_pairs)
    if not slim:
        raise UserError(f"{ckpt} holds no networks to export")
    folder = root(out_dir)
    (folder / "weights").mkdir(parents=True, exist_ok=True)
    rel = f"weights/{name}.safetensors"
    source = {
        "checkpoint": _where_from(ckpt),
        "payload_sha256": man.get("payload_sha256"),
        "step": man.get("step"),
    }
    zman = {k: v for k, v in man.items() if k not in _DROPPED}
    zman["zoo"] = {"name": name, "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from": source}
    out = ckf.save_checkpoint(folder / rel, slim, zman)
    fam.from_checkpoint(out)  # the file loads as every zoo file must, before it is indexed
    size = out.stat().st_size
    if size > MAX_BYTES:
        warn(f"zoo model {name} is {size / 2**20:.1f} MB; zoo models are meant to be a few MB")
    config = json.loads(json.dumps(man["config"]))
    config["train"].update(steps=man.get("step"), minutes=None, epochs=None)
    recipe = {
        **recipe,
        "seed": recipe.get("seed", config["train"]["seed"]),
        "steps": recipe.get("steps", man.get("step")),
        "config": config,
    }
    _write_entry(
        folder,
        name,
        {
            "file": rel,
            "sha256": sha256_file(out),
            "payload_sha256": ckf.payload_hash(slim),
            "size_bytes": size,
            "family": man["family"],
            "preset": man.get("preset", man["family"]),
            "task": task or recipe.get("task") or _about(man),
            "image_shape": man.get("image_shape"),
            "num_classes": man.get("num_classes", 0),
            "classes": man.get("classes", []),
            "pixelsmith_version": man.get("pixelsmith_version"),
            "torch_version": man.get("torch_version"),
            "recipe": recipe,
            "results": results,
            "source": source,
            # A private run's budget: epsilon, delta, accountant, noise, clip, rate, steps.
            **({"privacy": man["privacy"]} if man.get("privacy") else {}),
        },
    )
    return out


def _write_entry(folder: Path, name: str, record: dict[str, Any]) -> None:
    index = _read_index(folder)
    index["models"][name] = record
    index["models"] = dict(sorted(index["models"].items()))
    text = json.dumps(index, indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(_index_path(folder), text.encode())


def export_tensors(
    name: str,
    tensors: dict[str, torch.Tensor],
    manifest: dict[str, Any],
    recipe: dict[str, Any],
    results: dict[str, Any],
    task: str,
    out_dir: str | Path | None = None,
) -> Path:
    """Write a model trained outside the engine (the forensics detectors) as zoo file `name` and
    index it; `manifest` needs its `family` and `preset`, which the model's own loader reads."""
    if not _NAME.match(name):
        raise UserError(
            f"zoo name {name!r} must be lower-case letters, digits, '.', '_' or '-' (at most 64)"
        )
    _check_recipe(recipe, results)
    if not (isinstance(manifest.get("family"), str) and isinstance(manifest.get("preset"), str)):
        raise UserError("a zoo manifest needs its 'family' and 'preset'")
    folder = root(out_dir)
    (folder / "weights").mkdir(parents=True, exist_ok=True)
    rel = f"weights/{name}.safetensors"
    zman = {**manifest, "zoo": {"name": name, "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}
    out = ckf.save_checkpoint(folder / rel, tensors, zman)
    _write_entry(
        folder,
        name,
        {
            "file": rel,
            "sha256": sha256_file(out),
            "payload_sha256": ckf.payload_hash(tensors),
            "size_bytes": out.stat().st_size,
            "family": manifest["family"],
            "preset": manifest["preset"],
            "task": task,
            "image_shape": manifest.get("image_shape"),
            "pixelsmith_version": manifest.get("pixelsmith_version"),
            "torch_version": str(torch.__version__),
            "recipe": recipe,
            "results": results,
        },
    )
    return out


# ---- re-making a model ---------------------------------------------------------------------


def _run_scores(run_dir: Path) -> dict[str, float]:
    """A run's newest score of each metric, from its manifest.json (as evaluations store it)."""
    p = run_dir / "manifest.json"
    if not p.is_file():
        return {}
    best: dict[str, tuple[int, float]] = {}
    for s in json.loads(p.read_text()).get("scores", []):
        metric, step = s["card"]["metric"], s.get("step") or 0
        if metric not in best or step >= best[metric][0]:
            best[metric] = (step, float(s["value"]))
    return {k: v for k, (_, v) in best.items()}


def tolerance(e: Entry, metric: str) -> float:
    """How far a re-made result may lie from the entry's and still count as reproduced."""
    given = (e.results.get("tolerance") or {}).get(metric)
    ref = e.results["metrics"][metric]
    return float(given) if given is not None else DEFAULT_REL_TOLERANCE * abs(ref)


def remake_check(name: str, run: str | Path, where: str | Path | None = None) -> str:
    """Whether a re-made run matches zoo model `name`: "identical" when its weights hash the
    same, else each result of the entry beside the run's, and whether it is within tolerance."""
    e = entry(name, where)
    ckpt = ckf.resolve_checkpoint(run)
    tensors, man = ckf.load_checkpoint(ckpt)
    pairs = family_class(str(man.get("family"))).ema_pairs
    payload = ckf.payload_hash(inference_tensors(tensors, pairs))
    if payload == e.payload_sha256:
        return f"identical: the re-made weights are {e.ref}'s, bit for bit (payload {payload[:16]})"
    lines = [
        f"different weights from {e.ref} (payload {payload[:16]} vs {e.payload_sha256[:16]}; "
        "expected on another CPU, torch version or setting); its results:"
    ]
    want = e.recipe.get("steps")
    if want is not None and man.get("step") != want:
        lines.append(f"  steps: {man.get('step')} re-made, {want} in the recipe")
    run_dir = Path(run) if Path(run).is_dir() else ckpt.parent.parent
    got = _run_scores(run_dir)
    for metric, ref in e.results["metrics"].items():
        if metric not in got or not math.isfinite(got[metric]):
            lines.append(f"  {metric}: not measured by the re-made run (the entry's: {ref:.4g})")
            continue
        tol, diff = tolerance(e, metric), got[metric] - ref
        verdict = "within" if abs(diff) <= tol else "OUTSIDE"
        lines.append(
            f"  {metric}: {got[metric]:.4g} re-made vs {ref:.4g} ({diff:+.3g}, {verdict} the "
            f"tolerance of {tol:.3g})"
        )
    if not got:
        again = e.results["command"].replace(e.ref, str(run))
        lines.append(f"  measure the re-made run as the entry was: {again}")
    return "\n".join(lines)
