"""Loading trained models and drawing images from them: the one place that the Python API, the
metrics, the editors and the server call (`load_model`, `sample_batches`, `sample_to`, ...)."""

from pixelsmith.generate.load import load_model
from pixelsmith.generate.sample import (
    batch_seed,
    parse_labels,
    parse_options,
    sample_batches,
    sample_to,
    style_mix_to,
    write_images,
)

__all__ = [
    "batch_seed",
    "load_model",
    "parse_labels",
    "parse_options",
    "sample_batches",
    "sample_to",
    "style_mix_to",
    "write_images",
]
