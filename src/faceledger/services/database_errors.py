"""Database conflicts as errors a person can act on, for the web API and the CLI.

Two requests that change the same records at the same moment (two first searches of one
new case number, a review step recorded twice) make the database refuse one of them: a
unique constraint (SQLAlchemy's ``IntegrityError``), or, on SQLite, a write lock that other
writers held past the busy timeout. Neither is a bug in the request or in faceledger, and
neither may answer as one (a 500 or a stack trace). The web API and the CLI, which must not
import SQLAlchemy themselves, ask :func:`clear_error` about anything unexpected.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError, OperationalError

from faceledger.errors import ConflictError, DatabaseBusyError, FaceLedgerError

#: What SQLite and PostgreSQL say when a lock could not be had in time.
_BUSY_WORDS = ("database is locked", "database is busy", "could not obtain lock", "deadlock detected")


def clear_error(exc: BaseException) -> FaceLedgerError | None:
    """The error to answer for a database conflict or a busy database; None for anything else."""
    if isinstance(exc, IntegrityError):
        return ConflictError(
            "another request changed the same records at the same moment, and the database kept "
            "theirs; nothing of yours was saved: look again and retry"
        )
    if isinstance(exc, OperationalError) and any(word in str(exc.orig).lower() for word in _BUSY_WORDS):
        return DatabaseBusyError(
            "the database is busy with other changes and nothing was saved; retry in a moment"
        )
    return None
