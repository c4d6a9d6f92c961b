"""Image-quality and distribution metrics with protocol cards.

Full-reference: `psnr`, `ssim`, `ms_ssim` (and `ImageMetricMeter`). Distribution: `FeatureStats`,
`frechet_distance`, `kernel_inception_distance`, `inception_score`, `precision_recall` (and the
streaming `FeatureBank`, `InceptionScoreMeter`). Feature networks: `feature_net("fmnist" | "mnist" |
"inception" | PATH | module)`. Scores and their protocol cards: `Score`, `Card`, `compare`.
"""

from pixelsmith.metrics.cards import Card, Score, check_comparable, compare
from pixelsmith.metrics.distribution import (
    FeatureBank,
    FeatureStats,
    InceptionScoreMeter,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from pixelsmith.metrics.features import FeatureNet, feature_net
from pixelsmith.metrics.image import ImageMetricMeter, ms_ssim, psnr, ssim

__all__ = [
    "Card",
    "FeatureBank",
    "FeatureNet",
    "FeatureStats",
    "ImageMetricMeter",
    "InceptionScoreMeter",
    "Score",
    "check_comparable",
    "compare",
    "feature_net",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "ms_ssim",
    "precision_recall",
    "psnr",
    "ssim",
]
