"""User-facing errors. The CLI prints their message (no traceback) and exits non-zero."""

from __future__ import annotations


class ZtbError(Exception):
    """An error a user can act on; the message says what was wrong and where."""

    exit_code = 2


class ConfigError(ZtbError):
    """A config file or override is invalid."""


class DataError(ZtbError):
    """Input market data is malformed or violates the validation policy."""


class CheckpointError(ZtbError):
    """A checkpoint is missing, corrupt, or incompatible."""


class RunError(ZtbError):
    """A run directory is missing or in a state that forbids the request."""


class RunWriteError(ZtbError):
    """A write of the run protocol failed (a full disk, a read-only or vanished folder): the run has
    ended `failed` and the message says what could not be written and what is saved."""

    exit_code = 1
