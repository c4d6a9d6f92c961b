"""The HTTP service (FastAPI; the `serve` extra)."""
