"""Errors a user can cause and fix, and warnings a user should see."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import TextIO


class UserError(Exception):
    """An error caused by the user's input; the CLI prints its one-sentence message and exits 2."""


class PixelsmithWarning(UserWarning):
    """Something a user should know that does not stop the work (e.g. skipped files)."""


def warn(message: str) -> None:
    """Emit a PixelsmithWarning; the CLI prints it as one `pixelsmith: warning:` line."""
    warnings.warn(message, PixelsmithWarning, stacklevel=2)


@contextlib.contextmanager
def cli_warnings(stream: TextIO | None = None) -> Iterator[None]:
    """Print pixelsmith's warnings as one line each and keep other libraries' warnings quiet.

    Python's default shows a warning with its source file and line, and libraries (Pillow,
    torch) warn about their own internals; on the command line a user sees only what is meant
    for them. PYTHONWARNINGS or -W still turn third-party warnings back on.
    """
    out = stream or sys.stderr

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
        print(f"pixelsmith: warning: {message}", file=out)

    with warnings.catch_warnings():
        if not sys.warnoptions:
            warnings.simplefilter("ignore")
        warnings.simplefilter("always", PixelsmithWarning)
        warnings.showwarning = show
        yield
