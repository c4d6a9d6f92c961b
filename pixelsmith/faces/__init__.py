"""Faces: detection (MTCNN, Haar, LBP), alignment, anonymisation, restoration and matching."""

from pixelsmith.faces.align import align_face, invert_affine, paste_back
from pixelsmith.faces.detect import (
    DETECTORS,
    available_detectors,
    default_detector,
    detect_faces,
    draw_faces,
)
from pixelsmith.faces.match import (
    THRESHOLD_FAR_1PCT,
    FaceMatcher,
    chi_square,
    lbp_codes,
    lbph,
    similarity,
    similarity_matrix,
)
from pixelsmith.faces.nms import iou, nms
from pixelsmith.faces.types import LANDMARKS, Face

__all__ = [
    "DETECTORS",
    "THRESHOLD_FAR_1PCT",
    "FaceMatcher",
    "chi_square",
    "lbp_codes",
    "lbph",
    "similarity",
    "similarity_matrix",
    "LANDMARKS",
    "Face",
    "align_face",
    "available_detectors",
    "default_detector",
    "detect_faces",
    "draw_faces",
    "invert_affine",
    "iou",
    "nms",
    "paste_back",
]
