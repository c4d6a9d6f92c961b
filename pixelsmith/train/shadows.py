"""LiRA's shadow models (Carlini et al. 2022), trained by the engine with the target's recipe.

Shadow k trains on its half of a pool of candidate images (each image inside exactly half of
the shadows), with the target's own settings: family, model, optimiser, privacy, steps or
epochs. Only what the pool cannot hold changes, and the note says so: a batch larger than a
quarter of the half-pool is cut to that quarter, and a run meant for a time budget trains for
`fallback_steps` steps. The shadows' statistics feed `membership.lira_scores`.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from pixelsmith.data.sources import ImageSet, fingerprint
from pixelsmith.errors import UserError
from pixelsmith.metrics.membership import logit_confidence
from pixelsmith.train.config import config_from_dict
from pixelsmith.train.loop import Trainer


def train_shadows(
    recipe: dict[str, Any],
    images: Tensor,
    labels: Tensor,
    shadows: int,
    seed: int = 0,
    fallback_steps: int = 500,
    log: Callable[[str], None] | None = None,
) -> tuple[Tensor, Tensor, str]:
    """(statistics (K, N), inside (K, N), note): `shadows` classifiers trained by `recipe` (a
    run's config) on halves of the (N, C, H, W) float pool, and each one's logit confidence."""
    if shadows < 2 or shadows % 2:
        raise UserError(f"LiRA needs an even number of shadows, at least 2; got {shadows}")
    n = len(images)
    g = torch.Generator().manual_seed(seed)
    inside = torch.zeros(shadows, n, dtype=torch.bool)
    for i in range(n):  # each image in a random half of the shadows
        inside[torch.randperm(shadows, generator=g)[: shadows // 2], i] = True
    pool = (images * 255).round().clamp(0, 255).byte()
    stats, notes = [], set()
    for k in range(shadows):
        idx = torch.nonzero(inside[k]).flatten()
        cfg = config_from_dict(recipe)
        tc = cfg.train
        tc.seed, tc.eval_every, tc.eval_at_end, tc.init = seed + 1 + k, 0, False, None
        if tc.batch > len(idx) // 4:
            notes.add(f"batch {tc.batch} cut to a quarter of each shadow's images")
            tc.batch = len(idx) // 4
        if not (tc.steps or tc.epochs):
            notes.add(f"{fallback_steps} steps instead of {tc.minutes} minutes")
            tc.steps, tc.minutes = fallback_steps, None
        data = ImageSet(pool[idx], labels[idx], [str(c) for c in range(int(labels.max()) + 1)],
                        "LiRA pool", "train", fingerprint(pool[idx], labels[idx]))  # fmt: skip
        if log:
            log(f"shadow {k + 1}/{shadows}: {len(idx)} images, {cfg.preset} recipe")
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(cfg, tmp, progress=False, data=data)
            try:
                trainer.run()
            finally:
                trainer.dist.close()
            net = trainer.family.classifier()
        stats.append(logit_confidence(net, images, labels))
    note = f"the target's recipe ({recipe.get('preset')}) on halves of the pool"
    return torch.stack(stats), inside, note + ("; " + ", ".join(sorted(notes)) if notes else "")


def stderr(message: str) -> None:
    """Progress of the shadows."""
    print(message, file=sys.stderr)
