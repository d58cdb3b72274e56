"""Every exception tieout raises, in one place.

Exceptions mean "cannot continue" (a missing file, a bad config, an unreachable API). Problems
with individual rows are data: :class:`pipelines.core.models.Issue` records, never exceptions.

::

    TieoutError                 exit code 2 unless said otherwise
    ├── ConfigError             a setting is missing or malformed
    ├── InputError              a file cannot be read as a table at all
    ├── LockHeldError           another run holds the lock (exit code 3)
    │   └── LedgerBusyError     another process holds the ledger's database itself
    ├── DiskFullError           the disk holding the data folder is full
    ├── LedgerError             the ledger database is unusable
    └── ApiError                Propexo answered with something we cannot use
        ├── TransientApiError   worth retrying later: 429, 5xx, connection trouble
        └── PermanentApiError   retrying will not help: 400, 401, 404
            └── TokenRefusedError   401/403: the token is refused; nothing was applied
"""

from __future__ import annotations


class TieoutError(Exception):
    """Base class: a condition that stops the command with a clear message."""

    exit_code = 2


class ConfigError(TieoutError):
    """A configuration value is missing or malformed."""


class InputError(TieoutError):
    """An input file cannot be read as a table (garbage, empty, encrypted, no header row).
    ``fix``: the one command that settles it, when tieout knows it (an alias for a charge
    column whose amounts are exactly what the file's totals miss), for the refused file's item.
    """

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


class UnknownLayout(InputError):
    """No profile reads the file's header: a layout may be proposed for it (#38)."""


class LockHeldError(TieoutError):
    """Another tieout process holds the run lock."""

    exit_code = 3


class LedgerBusyError(LockHeldError):
    """Another process holds the ledger's database (SQLite's lock) past the wait: exit 3."""


class DiskFullError(TieoutError):
    """The disk holding the data folder (ledger, reports, logs) is full."""


class LedgerError(TieoutError):
    """The ledger database cannot be opened or is inconsistent."""


class ApiError(TieoutError):
    """Propexo answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class TransientApiError(ApiError):
    """A failure that may pass: rate limited, server error, connection trouble.

    ``maybe_applied`` is true when the request may have reached Propexo (a 5xx or a lost
    response after sending a write): the write is then *in doubt* and must not be re-sent blindly.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, maybe_applied: bool = False
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.maybe_applied = maybe_applied


class UnreachableError(TransientApiError):
    """Propexo could not be reached at all (no connection opened): nothing was sent."""


class PermanentApiError(ApiError):
    """A failure that will not pass by retrying: bad request, bad token, unknown id."""


class TokenRefusedError(PermanentApiError):
    """Propexo refused the token (401) or its rights (403): the request was not applied, and
    no later request with this token will be either, so a run stops (records stay ``ready``)."""
