"""What a face detector reports: a box, a score and, where the detector gives them, landmarks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The five landmarks, in this order, named as they appear in the image (the person's right eye
# is on the image's left).
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One detected face: box (x0, y0, x1, y1) in input pixels, score, optional 5 landmarks."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None
    detector: str = ""

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: box, score, landmarks by name (or null), detector."""
        marks = None
        if self.landmarks is not None:
            pairs = zip(LANDMARKS, self.landmarks, strict=True)
            marks = {k: [round(x, 2), round(y, 2)] for k, (x, y) in pairs}
        return {
            "box": [round(v, 2) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": marks,
            "detector": self.detector,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Face:
        """The inverse of to_dict (landmarks optional)."""
        marks = d.get("landmarks")
        pts = tuple(tuple(map(float, marks[k])) for k in LANDMARKS) if marks else None
        box = tuple(float(v) for v in d["box"])
        return cls(box, float(d.get("score", 1.0)), pts, str(d.get("detector", "")))  # type: ignore[arg-type]
