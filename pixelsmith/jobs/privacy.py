"""`pixelsmith privacy audit MODEL --members DATA --non-members DATA`: membership inference
against a classifier (the loss-threshold attack) or a generator (the distance to its closest
sample), with a card of what was measured (`pixelsmith.metrics.membership`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pixelsmith.data.sources import ImageSet, load_images
from pixelsmith.errors import UserError
from pixelsmith.metrics import membership
from pixelsmith.models.base import Family


def data(spec: str, n: int) -> ImageSet:
    """SOURCE[:SPLIT] (split train by default), its first n images."""
    source, _, split = spec.partition(":")
    return load_images(source, split=split or "train", limit=n)


def _family(model: str) -> Family | None:
    """The run or zoo model `model` names, loaded once (None: a shipped or TorchScript
    classifier network, which is no family)."""
    from pixelsmith.generate import load_model
    from pixelsmith.metrics.features import SHIPPED

    if model in SHIPPED or model.endswith((".pt", ".pth", ".ts")):
        return None
    return load_model(model)


def audit(
    model: str,
    members: str,
    non_members: str,
    n: int = 2000,
    samples: int = 10000,
    seed: int = 0,
    lira: int = 0,
    train_shadows: Callable[..., tuple[torch.Tensor, torch.Tensor, str]] | None = None,
) -> dict[str, Any]:
    """Membership inference of `n` member and `n` non-member images against `model`; with
    `lira` shadows (a classifier with a recipe), also LiRA, its shadows made by
    `train_shadows(recipe, images, labels, lira, seed)` (`pixelsmith.train.shadows`)."""
    if n < 10 or samples < 1:
        raise UserError(f"--n must be at least 10 and --samples at least 1, got {n} and {samples}")
    white = lira_report = None
    fam = _family(model)
    # a classifier by what its family can do, not by its name
    if fam is None or fam.abilities.classifies:
        from pixelsmith.robust.models import classifier

        clf = classifier(model)
        ms, ns = data(members, n), data(non_members, n)
        if ms.labels is None or ns.labels is None:
            raise UserError("the loss attack needs labelled images: name a labelled source")
        scores = (
            membership.loss_scores(clf, ms.as_float(), ms.labels),
            membership.loss_scores(clf, ns.as_float(), ns.labels),
        )
        attack, name = "loss threshold (Yeom et al. 2018)", f"{clf.name} ({clf.sha256[:12]})"
        if lira:
            lira_report = _lira(fam, clf, ms, ns, lira, seed, train_shadows)
    elif lira:
        raise UserError("LiRA (--lira) audits classifiers; a generator gets the sample distance")
    else:
        gen = fam
        if not gen.abilities.generates:
            raise UserError(f"{model} neither classifies nor generates: nothing to audit")
        ms, ns = data(members, n), data(non_members, n)
        shape, held = tuple(gen.image_shape), tuple(ms.images.shape[1:])
        if shape != held:
            raise UserError(f"{model} draws {shape} images, the data is {held}: audit it on "
                            "its own kind of data")  # fmt: skip
        fake = torch.cat([gen.sample(min(500, samples - i), seed=seed + i)
                          for i in range(0, samples, 500)])  # fmt: skip
        scores = (membership.nearest_sample_scores(fake, ms.as_float()),
                  membership.nearest_sample_scores(fake, ns.as_float()))  # fmt: skip
        attack = f"distance to the closest of {samples} samples (GAN-leaks, black box)"
        name = model
        if gen.abilities.discriminates:  # LOGAN's white box: D is surer of its training images
            labelled = bool(gen.classes)
            if labelled and (ms.labels is None or ns.labels is None):
                raise UserError("a conditional discriminator needs labelled member images")
            d_scores = [
                gen.discriminate(d.as_float(), d.labels if labelled else None) for d in (ms, ns)
            ]
            white = membership.membership_report(*d_scores)
            white["attack"] = "the discriminator's score (LOGAN, Hayes et al. 2019, white box)"
    report = membership.membership_report(*scores)
    card = {"model": name, "attack": attack, "seed": seed,
            "members": f"{ms.name}:{ms.split}, first {len(ms.images)}",
            "non_members": f"{ns.name}:{ns.split}, first {len(ns.images)}"}  # fmt: skip
    if white is not None:
        report["discriminator"] = white
    if lira_report is not None:
        report["lira"] = lira_report
    record = fam.manifest.get("privacy") if fam is not None else None
    if record:  # an audit of a private model never reads as one of a plain model
        from pixelsmith.metrics.cards import privacy_line

        card["privacy"] = privacy_line(record)
    return {**report, "card": card}


def _lira(
    fam: Family | None,
    clf: torch.nn.Module,
    ms: ImageSet,
    ns: ImageSet,
    shadows: int,
    seed: int,
    train_shadows: Callable[..., tuple[torch.Tensor, torch.Tensor, str]] | None,
) -> dict[str, Any]:
    """Online LiRA over the members and non-members, with shadows trained by the model's recipe."""
    if fam is None or "config" not in fam.manifest or train_shadows is None:
        raise UserError(
            "LiRA trains shadow models by the target's recipe: audit a classifier run or a zoo "
            "classifier, not a bare network"
        )
    x = torch.cat([ms.as_float(), ns.as_float()])
    y = torch.cat([ms.labels, ns.labels])
    stats, inside, note = train_shadows(fam.manifest["config"], x, y, shadows, seed)
    scores = membership.lira_scores(membership.logit_confidence(clf, x, y), stats, inside)
    rep = membership.membership_report(scores[: len(ms)], scores[len(ms) :])
    rep["attack"] = f"LiRA (Carlini et al. 2022, online, {shadows} shadows: {note})"
    return rep
