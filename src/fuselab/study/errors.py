"""Errors raised by fuselab studies; each message names the file path / key and what was expected."""

from __future__ import annotations

from fuselab._validate import ConfigError

__all__ = ["ConfigError", "StoreError", "StoreLockedError", "StoreReadOnlyError", "StudyDirError"]


class StudyDirError(RuntimeError):
    """The study directory cannot be used as asked (written by another config, busy, ...)."""


class StoreError(RuntimeError):
    """The results database cannot be read or written."""


class StoreLockedError(StoreError):
    """The results database stayed locked by another process past the retry budget."""


class StoreReadOnlyError(StoreError):
    """The results database (or its directory) is read-only."""
