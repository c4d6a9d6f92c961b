"""Scores a family earns on real held-out images rather than on its samples.

- `nll` (families with a likelihood: VAE, PixelCNN): the model's own negative log-likelihood
  figures of the real images, in bits/dim and nats (`Family.nll_scores`).
- `translation` (families that translate: CycleGAN): how often the source's shipped classifier
  calls a translation the target domain, and the cycle PSNR of A->B->A and B->A->B.
- `restoration` (families that restore): PSNR and SSIM of restored real images degraded the
  way the family trains (its `prepare_batch`, seeded), beside the degraded input's own PSNR.
- `accuracy` (families that classify): top-1 accuracy on the labelled real images; the card
  records the attack the model was trained against (`training_*`).
- `class_agreement` (class-conditional generators): how often the source's shipped classifier
  calls a sample drawn for a class that class, one sample per real image and its label, and how
  varied each class's samples are beside its real images (`spread`: a class drawn as one image
  is called right every time and scores 0 there).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelsmith.data.sources import ImageSet
from pixelsmith.errors import UserError, warn
from pixelsmith.models.base import Batch, Family
from pixelsmith.utils.rng import BatchRandom

if TYPE_CHECKING:
    from pixelsmith.metrics.features import FeatureNet

Scored = tuple[dict[str, float], dict[str, Any]]


def family_metrics(model: Family) -> tuple[str, ...]:
    """The metrics of this kind a model has, from its declared abilities."""
    a = model.abilities
    return (
        (("nll",) if a.likelihood else ())
        + (("translation",) if a.translates else ())
        + (("restoration",) if a.restores else ())
        + (("accuracy",) if a.classifies else ())
        + (("class_agreement",) if a.generates and model.classes else ())
    )


def score(model: Family, metric: str, data: ImageSet, seed: int = 0) -> Scored:
    """(values, protocol) of one family metric on real uint8 images (e.g. the test split).

    The protocol may hold "features", "features_sha256", "resize" and "params" for the cards.
    """
    if metric not in family_metrics(model):
        own = family_metrics(model)
        raise UserError(
            f"the {model.name} family has no metric {metric!r}"
            + (f"; it has: {', '.join(own)}" if own else "")
        )
    if metric == "nll":
        values, params = model.nll_scores(data.images, labels=data.labels, seed=seed)
        return values, {"params": params}
    if metric == "restoration":
        return restoration_scores(model, data, seed)
    if metric == "accuracy":
        return accuracy_scores(model, data)
    if metric == "class_agreement":
        return class_agreement_scores(model, data, seed)
    return translation_scores(model, data)


def classes_called(net: FeatureNet, batches: Iterable[Tensor]) -> Tensor:
    """The class a shipped classifier calls each image of a stream of batches in [0, 1]."""
    return torch.cat([logits.argmax(1).cpu() for _, logits in net.batches(batches)])


def _check_labelled(model: Family, data: ImageSet, what: str) -> Tensor:
    """The labels of `data`, refused unless they are the classes the model was trained on."""
    if data.labels is None:
        raise UserError(
            f"{data.name} ({data.split}) has no labels, so {what} cannot be scored on it; "
            "score on a labelled split"
        )
    trained = list((model.manifest or {}).get("classes") or [])
    if trained and list(data.classes) != trained:
        raise UserError(
            f"the classes of {data.name} ({data.split}: {', '.join(map(str, data.classes))}) are "
            f"not the ones the model was trained on ({', '.join(map(str, trained))}); score it "
            "on data with those classes"
        )
    if not len(data):
        raise UserError(f"{data.name} ({data.split}) holds no images to score")
    return data.labels


@torch.no_grad()
def accuracy_scores(model: Family, data: ImageSet, batch: int = 1000) -> Scored:
    """Top-1 accuracy of the model's (averaged) network on real labelled uint8 images, which
    must carry the classes it was trained on, in the same order."""
    labels = _check_labelled(model, data, "accuracy")
    right = 0
    for i in range(0, len(data), batch):
        logits = model.classify(data.images[i : i + batch])
        right += int((logits.argmax(1) == labels[i : i + batch]).sum())
    trained_against = {f"training_{k}": v for k, v in model.defence_settings().items()}
    return {"accuracy": right / len(data)}, {"params": {"network": "EMA", **trained_against}}


@torch.no_grad()
def class_agreement_scores(model: Family, data: ImageSet, seed: int = 0) -> Scored:
    """How often the source's shipped classifier calls a sample drawn for class c class c.

    One sample per real image, drawn (seeded) for its label, so the classes come in the split's
    proportions: `samples` is the rate over all of them, `worst_class` the lowest rate of any
    class (a class the generator cannot draw, which the mean hides), `real` the classifier's
    accuracy on the real images themselves, what a perfect generator would score. Samples are
    rounded to 8 bits first, as for FID.

    `spread` is the mean over classes of the samples' pixel spread over the real images' (per
    pixel standard deviation within the class, averaged over pixels), `worst_spread` its lowest
    class: near 1 when a class is drawn as varied as the data, near 0 when it collapsed to one
    image.
    """
    from pixelsmith.generate.sample import sample_batches
    from pixelsmith.metrics.features import FOR_SOURCE, feature_net, quantize

    labels = _check_labelled(model, data, "class agreement")
    spec = FOR_SOURCE.get(data.name)
    if spec is None or data.domain_classes is not None:
        raise UserError(
            f"no shipped classifier knows the classes of {data.name}"
            + (" loaded with data.domains" if data.domain_classes is not None else "")
            + ", so class agreement cannot be scored on it"
        )
    net = feature_net(spec)
    opts = model.sample_options(labels=labels.tolist())
    samples: list[Tensor] = []

    def kept(x: Tensor) -> Tensor:
        samples.append(quantize(x).cpu())
        return samples[-1]

    drawn = classes_called(net, (kept(x) for x in sample_batches(model, len(data), seed, opts)))
    hit = (drawn == labels).float()
    present = [c for c in range(len(data.classes)) if bool((labels == c).any())]
    rates = {c: float(hit[labels == c].mean()) for c in present}
    worst = min(rates, key=rates.__getitem__)
    spreads = class_spreads(torch.cat(samples), data.as_float(), labels, present)
    least = min(spreads, key=spreads.__getitem__)
    values = {
        "samples": float(hit.mean()),
        "worst_class": rates[worst],
        "real": float((classes_called(net, [data.as_float()]) == labels).float().mean()),
        "spread": sum(spreads.values()) / len(spreads),
        "worst_spread": spreads[least],
    }
    params = {
        "worst": str(data.classes[worst]),
        "per_class": " ".join(f"{rates[c]:.3f}" for c in present),
        "least_varied": str(data.classes[least]),
        "spread_per_class": " ".join(f"{spreads[c]:.3f}" for c in present),
        "network": "EMA",
    }
    protocol = {"features": net.name, "features_sha256": net.sha256, "resize": net.resize}
    return values, {**protocol, "params": params}


def class_spreads(
    samples: Tensor, real: Tensor, labels: Tensor, classes: Iterable[int]
) -> dict[int, float]:
    """Per class: the samples' mean per-pixel standard deviation over the real images'."""

    def spread(x: Tensor) -> Tensor:
        return x.flatten(1).double().std(0, correction=0).mean()

    return {
        c: float(spread(samples[labels == c]) / spread(real[labels == c]).clamp_min(1e-12))
        for c in classes
    }


@torch.no_grad()
def restoration_scores(model: Family, data: ImageSet, seed: int = 0, batch: int = 256) -> Scored:
    """Mean PSNR (dB) and SSIM of restorations of real images degraded as the family trains
    (seeded by `seed`), and the degraded inputs' PSNR: what doing nothing scores."""
    from pixelsmith.metrics.image import psnr, ssim

    rng = BatchRandom(seed)
    sums = {"psnr": 0.0, "ssim": 0.0, "input_psnr": 0.0}
    for i in range(0, len(data), batch):
        clean = data.images[i : i + batch].float() / 255
        labels = None if data.labels is None else data.labels[i : i + batch]
        pair = model.prepare_batch(Batch(clean, labels), rng)
        degraded = pair.inputs
        restored = model.restore(degraded, mask=pair.mask).clamp(0, 1)
        sums["psnr"] += float(psnr(restored, clean).sum())
        sums["ssim"] += float(ssim(restored, clean).sum())
        if degraded.shape[-2:] != clean.shape[-2:]:  # super-resolution: doing nothing = bicubic
            size = tuple(clean.shape[-2:])
            degraded = F.interpolate(degraded, size=size, mode="bicubic", align_corners=False)
        sums["input_psnr"] += float(psnr(degraded.clamp(0, 1), clean).sum())
    return {k: v / len(data) for k, v in sums.items()}, {"params": {"degradation_seed": seed}}


@torch.no_grad()
def translation_scores(model: Family, data: ImageSet) -> Scored:
    """Translation success by the source's shipped classifier, and cycle PSNR (dB).

    On real domain-labelled images (e.g. the test split loaded with the run's data.domains):
    `a2b_success` is the fraction of A->B translations that the classifier assigns to one of
    B's source classes (`b2a_success` likewise), `a_real_accuracy` / `b_real_accuracy` its
    rate on the untranslated images (the baseline), `aba_psnr` / `bab_psnr` the mean
    per-image PSNR of A->B->A and B->A->B reconstructions. Without a shipped classifier for
    the source only the PSNRs come back, with a warning.
    """
    from pixelsmith.metrics.features import FOR_SOURCE, feature_net
    from pixelsmith.metrics.image import psnr

    labels = data.labels
    if labels is None or len(data.classes) != 2 or not bool((labels <= 1).all()):
        raise UserError(
            f"translation is scored on the model's two domains, and {data.name} holds "
            f"{len(data.classes)} classes; load it with the run's data.domains"
        )
    x = data.as_float()
    a, b = x[labels == 0], x[labels == 1]
    if not len(a) or not len(b):
        raise UserError(f"{data.name} ({data.split}) needs images of both domains")
    fake_b, fake_a = model.translate(a, "a2b"), model.translate(b, "b2a")
    values = {
        "aba_psnr": float(psnr(model.translate(fake_b, "b2a"), a, reduction="mean")),
        "bab_psnr": float(psnr(model.translate(fake_a, "a2b"), b, reduction="mean")),
    }
    params: dict[str, Any] = {
        "domains": f"{data.classes[0]}:{data.classes[1]}",
        "n_a": len(a),
        "n_b": len(b),
        "generators": "EMA",
    }
    spec = FOR_SOURCE.get(data.name)
    if spec is None or data.domain_classes is None:
        warn(
            f"no shipped classifier knows the classes of {data.name}: translation scores hold "
            "only the cycle PSNRs"
        )
        return values, {"params": params}
    net = feature_net(spec)
    ids_a, ids_b = (torch.tensor(c) for c in data.domain_classes)

    def rate(images: Tensor, ids: Tensor) -> float:
        called = classes_called(net, [images])
        return float(torch.isin(called, ids).float().mean())

    values |= {
        "a2b_success": rate(fake_b, ids_b),
        "b2a_success": rate(fake_a, ids_a),
        "a_real_accuracy": rate(a, ids_a),
        "b_real_accuracy": rate(b, ids_b),
    }
    protocol = {
        "features": net.name,
        "features_sha256": net.sha256,
        "resize": net.resize,
        "params": params,
    }
    return values, protocol
