"""Protocol cards: how a score was made, so that only like is compared with like.

A FID of 6 and a FID of 23 can both be right: sample count, feature network, reference split and
resize rule move the number more than most model changes. Every score carries its card; two
scores compare only when their cards agree on everything but the value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pixelsmith.errors import UserError
from pixelsmith.version import __version__


@dataclass(frozen=True)
class Card:
    """Everything that defines how a score was computed."""

    metric: str
    features: str
    features_sha256: str
    n: int
    reference: str
    reference_n: int
    resize: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Card:
        """Inverse of `to_dict`; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        extra = set(d) - names
        if extra:
            raise UserError(f"unknown protocol card fields: {sorted(extra)}")
        return cls(**d)

    def key(self, *ignore: str) -> str:
        """A stable hash of the card (optionally ignoring some fields)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ignore}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self, metric: bool = True, params: bool = True) -> str:
        """One line for tables and logs."""
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items())) if params else ""
        return (
            (f"{self.metric}: " if metric else "")
            + f"{self.features} ({self.features_sha256[:12]}), n={self.n} vs "
            f"{self.reference} (n={self.reference_n}), resize: {self.resize}, seed {self.seed}"
            + (f", {extra}" if extra else "")
            + f", pixelsmith {self.version}"
        )


@dataclass(frozen=True)
class Score:
    """A metric value with its spread (if any) and its card."""

    value: float
    card: Card
    std: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {"value": self.value, "std": self.std, "card": self.card.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Score:
        """Inverse of `to_dict`."""
        return cls(float(d["value"]), Card.from_dict(d["card"]), d.get("std"))

    def __str__(self) -> str:
        spread = f" ± {self.std:.4g}" if self.std is not None else ""
        return f"{self.card.metric} {self.value:.4g}{spread} (n={self.card.n})"


def card_differences(a: Card, b: Card) -> list[str]:
    """Human-readable differences between two cards, e.g. "n (10000 vs 2000)"."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{k} ({da[k]!r} vs {db[k]!r})" for k in da if da[k] != db[k]]


def check_comparable(a: Score | Card, b: Score | Card) -> None:
    """Raise UserError naming every difference when two scores were made differently."""
    ca = a.card if isinstance(a, Score) else a
    cb = b.card if isinstance(b, Score) else b
    diff = card_differences(ca, cb)
    if diff:
        raise UserError(
            f"these {ca.metric} scores are not comparable: their protocol cards differ in "
            + ", ".join(diff)
        )


def compare(a: Score, b: Score) -> float:
    """b.value - a.value, refused when the two cards differ."""
    check_comparable(a, b)
    return b.value - a.value


def privacy_line(record: dict[str, Any]) -> str:
    """A private run's budget (train/privacy.py's record) in one line, as cards carry it:
    'DP-SGD epsilon=3 delta=1e-05 (rdp, noise 1.93, clip 0.1, 1172 steps at rate 0.0341)', or
    for a release 'DP release epsilon=10 delta=1e-05 (rdp, noise 0.53, sensitivity 1.41, once)'."""
    eps = record["epsilon"]
    eps_s = eps if isinstance(eps, str) else f"{eps:.3g}"
    head = f"epsilon={eps_s} delta={record['delta']:g} ({record['accountant']}, noise "
    head += f"{record['noise_multiplier']:.3g}"
    if "sensitivity" in record:
        return f"DP release {head}, sensitivity {record['sensitivity']:.3g}, once)"
    return (
        f"DP-SGD {head}, clip {record['max_grad_norm']:g}, "
        f"{record['steps']} steps at rate {record['sample_rate']:.3g})"
    )
