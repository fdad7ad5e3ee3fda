"""Errors the command line turns into one clear line and exit status 2."""

from __future__ import annotations

import os


class BadInputError(ValueError):
    """A user-supplied file or value is unusable.

    The message always starts with what was wrong where, e.g. ``"song.wav: truncated (...)"``;
    ``waveforge`` prints it on one line and exits with status 2.
    """

    def __init__(self, where: str | os.PathLike | None, problem: str):
        self.where = None if where is None else os.fspath(where)
        self.problem = problem
        super().__init__(problem if where is None else f"{self.where}: {problem}")
