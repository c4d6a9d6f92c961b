"""`pixelsmith eval`: score a trained model's samples against a reference split, with cards."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pixelsmith.errors import UserError, warn
from pixelsmith.generate import sample_batches
from pixelsmith.metrics.cards import Card, Score, privacy_line
from pixelsmith.metrics.distribution import (
    FeatureStats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from pixelsmith.metrics.family import family_metrics
from pixelsmith.metrics.family import score as family_score
from pixelsmith.metrics.features import (
    FOR_SOURCE,
    FeatureNet,
    check_spec,
    feature_net,
    quantize,
)
from pixelsmith.models.base import Family, SampleConfig
from pixelsmith.version import __version__

METRICS = ("fid", "kid", "is", "pr")
# Data options that change which real images a run saw (passed on to load_images).
DATA_OPTIONS = ("domains",)
EVAL_PATCHES = 192
FID_MIN_N = 10_000
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PR_K = 3
IS_SPLITS = 10


def parse_metrics(spec: str | Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """ "fid,kid" -> ["fid", "kid"], refusing unknown names; `extra` adds a family's own."""
    names = [m.strip().lower() for m in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [m for m in names if m]
    known = (*METRICS, *extra)
    bad = [m for m in names if m not in known]
    if bad or not names:
        raise UserError(f"unknown metric(s) {bad or spec!r}; choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


def default_metrics(model: Family) -> str:
    """What `auto` scores: FID and KID of a model that draws images, else its own metrics."""
    return "fid,kid" if model.abilities.generates else ",".join(family_metrics(model))


@dataclass(frozen=True)
class Plan:
    """What an evaluation will compute, checked before any work starts."""

    sample_metrics: list[str]
    family_metrics: list[str]
    features: str | Path | torch.nn.Module | None
    source: str
    split: str


def plan(
    model: Family,
    metrics: str | Sequence[str] = "auto",
    features: str | Path | torch.nn.Module = "auto",
    reference: str | None = None,
    data: dict[str, Any] | None = None,
) -> Plan:
    """Check that the asked metrics fit the model and a feature network exists for them."""
    own = family_metrics(model)
    if metrics == "auto":
        metrics = default_metrics(model)
    names = parse_metrics(metrics, own)
    source = (data or {}).get("source")
    split = "test"
    if reference:
        source, _, split = reference.rpartition(":") if ":" in reference else (reference, "", "")
        split = split or "test"
    if not source:
        raise UserError("no reference data is known for this model; pass --reference SOURCE")
    mine = [m for m in names if m in own]
    sampled = [m for m in names if m not in own]
    if sampled and not model.abilities.generates:
        raise UserError(
            f"a {model.name} model does not draw images, so "
            f"{', '.join(sampled)} of its samples mean nothing; use metrics {','.join(own)}"
        )
    net = None
    if sampled:
        net = features
        if features == "auto":
            if source not in FOR_SOURCE:
                raise UserError(
                    f"no shipped feature network for {source!r}; pass --features inception or a "
                    "TorchScript file (train.eval_features when training)"
                )
            net = FOR_SOURCE[source]
        if not check_spec(net) and "is" in sampled:
            raise UserError(
                f"the {net} features have no logits, so no Inception Score; drop 'is' or use "
                "a shipped classifier (fmnist, mnist)"
            )
    return Plan(sampled, mine, net, source, split)


def _ref_batches(images: Tensor, batch: int = 500) -> Iterator[Tensor]:
    for i in range(0, len(images), batch):
        yield images[i : i + batch].float() / 255


class _Collector:
    """Streams features into what the asked metrics need; memory flat for FID alone."""

    def __init__(self, metrics: Sequence[str], keep_logits: bool):
        self.stats = FeatureStats()
        self.keep_feats = any(m in ("kid", "pr") for m in metrics)
        self.keep_logits = keep_logits
        self.feats: list[Tensor] = []
        self.logits: list[Tensor] = []

    def add(self, f: Tensor, logits: Tensor | None) -> None:
        self.stats.update(f)
        if self.keep_feats:
            self.feats.append(f.float().cpu())
        if self.keep_logits and logits is not None:
            self.logits.append(logits.float().cpu())

    def features(self) -> Tensor:
        return torch.cat(self.feats) if self.feats else torch.empty(0)


def _run(
    net: FeatureNet,
    batches: Iterator[Tensor],
    col: _Collector,
    n: int,
    what: str,
    log: Callable[[str], None] | None,
) -> None:
    t0, done, last = time.monotonic(), 0, 0.0
    for f, logits in net.batches(batches):
        col.add(f, logits)
        done += len(f)
        now = time.monotonic()
        if log and (now - last > 2 or done == n):
            last = now
            rate = done / max(now - t0, 1e-9)
            log(f"\r{what}: {done}/{n} images, {rate:.0f} img/s ")
    if log:
        log("\n")


def reference_stats(
    net: FeatureNet,
    source: str,
    split: str,
    channels: int,
    size: tuple[int, int],
    limit: int | None = None,
    log: Callable[[str], None] | None = None,
    domains: str | None = None,
) -> tuple[FeatureStats, Tensor, dict[str, Any]]:
    """Features of a reference split (the run's domains of it, if it had them), cached on disk
    keyed by network, data and resize rule."""
    from pixelsmith.data.sources import cache_dir, load_images

    ref = load_images(
        source, split=split, channels=channels, size=size, limit=limit, domains=domains
    )
    name = f"{ref.name}:{ref.split}" + (f" (domains {domains})" if domains else "")
    info = {"reference": name, "reference_n": len(ref)}
    key = Card(
        metric="reference",
        features=net.name,
        features_sha256=net.sha256,
        n=len(ref),
        reference=f"{ref.name}:{ref.split}:{ref.fingerprint}",
        reference_n=len(ref),
        resize=f"{net.resize}; stored at {channels}x{size[0]}x{size[1]}",
        seed=0,
    ).key("version")
    path = cache_dir() / "refstats" / f"{key}.safetensors"
    if path.exists() and not ref.encrypted:
        from safetensors.torch import load_file

        t = load_file(str(path))
        feats = t.pop("features")
        return FeatureStats.from_state_dict(t), feats, info
    col = _Collector(["kid"], keep_logits=False)
    _run(net, _ref_batches(ref.images), col, len(ref), f"reference {info['reference']}", log)
    feats = col.features()
    if ref.encrypted:  # features of encrypted images are never cached in the clear
        return col.stats, feats, info
    try:
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({**col.stats.state_dict(), "features": feats.contiguous()}, str(tmp))
        tmp.replace(path)
    except OSError as e:
        warn(f"could not cache reference features in {path} ({e})")
    return col.stats, feats, info


def _same_source(p: Plan, data: dict[str, Any]) -> dict[str, Any]:
    """The run's data settings when the reference is the run's own source, else none."""
    return data if p.source == data.get("source") else {}


def run_data_settings(model: Family) -> dict[str, Any]:
    """The data settings of the run a loaded model came from (source, domains, ...)."""
    man = model.manifest or {}
    data = dict(man.get("config", {}).get("data", {}))
    data.setdefault("source", man.get("data", {}).get("name"))
    return data


def evaluate_model(
    model: Family,
    metrics: str | Sequence[str] = "auto",
    n: int = FID_MIN_N,
    features: str | Path | torch.nn.Module = "auto",
    reference: str | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    reference_n: int | None = None,
    data: dict[str, Any] | None = None,
    options: SampleConfig | None = None,
) -> list[Score]:
    """Score a model: its samples against a reference split (FID, KID, IS, PR), and the
    family's own metrics (NLL, translation) on the reference split's real images.

    `data` holds the settings the model's data was loaded with (source, domains; default: its
    run's), `options` the sampling options (default: the model's own); every card records both.
    """
    if n < 2:
        raise UserError(f"--n must be at least 2 samples, got {n}")
    if reference_n is not None and reference_n < 2:
        raise UserError(f"--reference-n must be at least 2 images, got {reference_n}")
    data = run_data_settings(model) if data is None else data
    p = plan(model, metrics, features, reference, data)
    scores = data_scores(
        model, p.family_metrics, p.source, p.split, _same_source(p, data), reference_n, seed
    )
    if not p.sample_metrics:
        return marked_training(scores, model.manifest)
    metrics = p.sample_metrics
    net = feature_net(p.features)
    if "is" in metrics and not net.has_logits:
        raise UserError(f"{net.name} has no logits, so no Inception Score; drop 'is' or use fmnist")
    if "fid" in metrics and n < FID_MIN_N:
        warn(
            f"FID from {n} samples is biased upward (use --n {FID_MIN_N} or more to compare "
            "with published numbers; KID is unbiased)"
        )
    c, h, w = model.image_shape
    ref_stats, ref_feats, info = reference_stats(
        net, p.source, p.split, c, (h, w), reference_n, log, _same_source(p, data).get("domains")
    )
    opts = model.sample_options(options)
    sampling = {f"sample.{k}": v for k, v in model.sample_settings(opts).items()}
    col = _Collector(metrics, keep_logits="is" in metrics)
    batches = (quantize(x) for x in sample_batches(model, n, seed, opts))
    _run(net, batches, col, n, "samples", log)

    def card(metric: str, **params: Any) -> Card:
        return Card(
            metric=metric,
            features=net.name,
            features_sha256=net.sha256,
            n=n,
            reference=info["reference"],
            reference_n=info["reference_n"],
            resize=net.resize,
            seed=seed,
            params={"quantized": "uint8", **sampling, **params},
            version=__version__,
        )

    for m in metrics:
        if m == "fid":
            scores.append(Score(frechet_distance(ref_stats, col.stats), card("fid")))
        elif m == "kid":
            size = min(KID_SUBSET_SIZE, n, len(ref_feats))
            mean, std = kernel_inception_distance(
                ref_feats, col.features(), subsets=KID_SUBSETS, subset_size=size, seed=seed
            )
            scores.append(Score(mean, card("kid", subsets=KID_SUBSETS, subset_size=size), std))
        elif m == "is":
            mean, std = inception_score(torch.cat(col.logits), splits=IS_SPLITS, seed=seed)
            scores.append(Score(mean, card("is", splits=IS_SPLITS), std))
        elif m == "pr":
            pr = precision_recall(ref_feats, col.features(), k=PR_K)
            scores.append(Score(pr["precision"], card("precision", k=PR_K)))
            scores.append(Score(pr["recall"], card("recall", k=PR_K)))
    return marked_training(scores, model.manifest)


def marked_training(scores: list[Score], manifest: dict[str, Any]) -> list[Score]:
    """Scores with what their training did that a card must say: a private run's budget (so a
    card of a private model never matches a non-private one's) and a learning-rate schedule."""
    extra = {}
    if manifest.get("privacy"):
        extra["privacy"] = privacy_line(manifest["privacy"])
    if manifest.get("lr_schedule"):
        extra["lr_schedule"] = manifest["lr_schedule"]
    if not extra:
        return scores
    return [replace(s, card=replace(s.card, params={**s.card.params, **extra})) for s in scores]


def data_scores(
    model: Family,
    metrics: Sequence[str],
    source: str,
    split: str,
    data_cfg: dict[str, Any],
    limit: int | None = None,
    seed: int = 0,
) -> list[Score]:
    """The family's own metrics on a real split, loaded as the model's data was."""
    if not metrics:
        return []
    from pixelsmith.data.sources import load_images

    c, h, w = model.image_shape
    extra = {k: data_cfg[k] for k in DATA_OPTIONS if data_cfg.get(k)}
    if data_cfg.get("patches") and source != "photos":  # a folder cropped as in training
        extra["patches"] = min(int(data_cfg["patches"]), EVAL_PATCHES)
    data = load_images(source, split=split, channels=c, size=(h, w), limit=limit, **extra)
    scores = []
    for metric in metrics:
        values, protocol = family_score(model, metric, data, seed=seed)
        params = {"family": model.name, **protocol.get("params", {})}
        card = Card(
            metric="",
            features=protocol.get("features", "none"),
            features_sha256=protocol.get("features_sha256", ""),
            n=len(data),
            reference=f"{data.name}:{data.split}",
            reference_n=len(data),
            resize=protocol.get("resize", f"stored at {c}x{h}x{w}"),
            seed=seed,
            params=params,
            version=__version__,
        )
        for key, value in values.items():
            scores.append(Score(float(value), replace(card, metric=f"{metric}/{key}")))
    return scores


def store_scores(run_dir: Path, scores: Sequence[Score], step: int | None = None) -> Path:
    """Add scores to the run's manifest.json, replacing older scores with the same card."""
    from pixelsmith.utils.files import atomic_write_bytes

    path = run_dir / "manifest.json"
    man = json.loads(path.read_text()) if path.exists() else {}
    old = man.get("scores", [])
    new = [{**s.to_dict(), "step": step} for s in scores]
    keys = {(d["card"]["metric"], Card.from_dict(d["card"]).key(), d["step"]) for d in new}
    kept = [
        d
        for d in old
        if (d["card"]["metric"], Card.from_dict(d["card"]).key(), d.get("step")) not in keys
    ]
    man["scores"] = kept + new
    atomic_write_bytes(path, json.dumps(man, indent=2).encode())
    return path


def format_table(scores: Sequence[Score]) -> str:
    """A plain-text table: metric, value, spread, n, features; the card lines below."""
    rows = [("metric", "value", "± std", "n", "reference", "settings")]
    for s in scores:
        std = f"{s.std:.4g}" if s.std is not None else ""
        params = ", ".join(f"{k}={v}" for k, v in sorted(s.card.params.items()))
        rows.append((s.card.metric, f"{s.value:.4f}", std, str(s.card.n), s.card.reference, params))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    cards = {s.card.key("metric", "params"): s.card for s in scores}
    lines += [""] + [f"card: {c.describe(metric=False, params=False)}" for c in cards.values()]
    return "\n".join(lines)


def stderr_log(msg: str) -> None:
    """Progress to stderr: redrawn in place on a terminal, one line per update elsewhere."""
    if sys.stderr.isatty():
        sys.stderr.write(msg)
    elif msg.strip():
        sys.stderr.write(msg.strip() + "\n")
    sys.stderr.flush()
