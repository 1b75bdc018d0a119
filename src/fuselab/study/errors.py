"""Errors raised by fuselab studies; each message names the file path / key and what was expected."""

from __future__ import annotations


class ConfigError(ValueError):
    """A study config is invalid; ``path`` is the location in the file (e.g. ``grid.fusion[2].op``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class StudyDirError(RuntimeError):
    """The study directory cannot be used as asked (written by another config, busy, ...)."""


class StoreError(RuntimeError):
    """The results database cannot be read or written."""


class StoreLockedError(StoreError):
    """The results database stayed locked by another process past the retry budget."""


class StoreReadOnlyError(StoreError):
    """The results database (or its directory) is read-only."""
