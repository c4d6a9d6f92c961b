"""Errors a user can cause and fix."""


class UserError(Exception):
    """An error caused by the user's input; the CLI prints its one-sentence message and exits 2."""
