"""Robustness of classifiers and editors (issue 19): attacks now; defences, honest evaluation and
the protection of photos to come. The attacks are tensor math in `pixelsmith.nn.attacks`, below
`models` so that adversarial training can use them; this room re-exports them."""

from pixelsmith.nn import attacks
from pixelsmith.nn.attacks import apgd, cw_l2, fgsm, pgd, square

__all__ = ["apgd", "attacks", "cw_l2", "fgsm", "pgd", "square"]
