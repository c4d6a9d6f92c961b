"""Robustness of classifiers and editors (issue 19): attacks, defences, honest evaluation, and
attacks on the editors with the protection of photos from them (`editors`). The classifier
attacks are tensor math in `pixelsmith.nn.attacks`, below `models` so that adversarial training
can use them; this room re-exports them."""

from pixelsmith.nn import attacks
from pixelsmith.nn.attacks import apgd, cw_l2, fgsm, pgd, square
from pixelsmith.robust.editors import (
    COUNTER_MEASURES,
    attack_editor,
    evaluate_protection,
    protect,
)
from pixelsmith.robust.models import classifier

__all__ = [
    "COUNTER_MEASURES",
    "apgd",
    "attack_editor",
    "attacks",
    "classifier",
    "cw_l2",
    "evaluate_protection",
    "fgsm",
    "pgd",
    "protect",
    "square",
]
