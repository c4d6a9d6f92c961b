"""Faces: detection (MTCNN, Haar, LBP), alignment, anonymisation, restoration and matching."""

from pixelsmith.faces.types import LANDMARKS, Face

__all__ = ["LANDMARKS", "Face"]
