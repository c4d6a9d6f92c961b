"""The package version, in a module of its own so that any room can read it without importing
`pixelsmith/__init__` (whose entry points import the rooms back: a circle)."""

__version__ = "0.1.0"
