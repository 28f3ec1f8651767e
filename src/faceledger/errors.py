"""The project's exceptions. Adapters translate library errors into these at the seam.

::

    FaceLedgerError                 base; every message is meant for a person to act on
    ├── ImageError                  a file could not be read as an image (names the file and why)
    │   └── ImageTooLargeError      over the pixel or byte limit (decompression-bomb guard)
    ├── NoFaceError                 an image has no face where one was required
    ├── AlignmentError              a face's landmarks cannot be mapped onto an aligner's template
    ├── ModelError                  a face model is missing, unreadable or inconsistent
    ├── ConfigError                 a setting is invalid
    ├── StoreError                  the data directory or database cannot be used
    │   ├── NotInitializedError     no data directory at that path (run `faceledger init`)
    │   ├── DatabaseBusyError       the database stayed locked by other writers; retry
    │   └── NotFoundError           a gallery, subject or face does not exist
    ├── ProvenanceError             an image lacks the provenance its gallery requires
    ├── ConflictError               the thing already exists / the state forbids the change
    ├── ValidationError             a value given by a person is malformed (a name, a date, a CSV row)
    ├── AuthenticationError         who is asking could not be established (sign-in, token, device)
    ├── PermissionDeniedError       the person is known but may not do this (carries the policy Decision)
    ├── VectorIndexError            the vector index cannot be used
    └── EvaluationError             an evaluation protocol file is malformed
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faceledger.domain.policy import Decision


class FaceLedgerError(Exception):
    """Base class. ``str(err)`` is a complete, human-readable reason."""

    code = "error"


class ImageError(FaceLedgerError):
    code = "bad_image"


class ImageTooLargeError(ImageError):
    code = "image_too_large"


class NoFaceError(FaceLedgerError):
    code = "no_face"


class AlignmentError(FaceLedgerError):
    code = "alignment_error"


class ModelError(FaceLedgerError):
    code = "model_error"


class ConfigError(FaceLedgerError):
    code = "config_error"


class StoreError(FaceLedgerError):
    code = "store_error"


class DatabaseBusyError(StoreError):
    """The database stayed locked by other writers past the wait; nothing was changed: retry."""

    code = "database_busy"


class NotInitializedError(StoreError):
    code = "not_initialized"


class NotFoundError(StoreError):
    code = "not_found"


class ProvenanceError(FaceLedgerError):
    code = "missing_provenance"


class ConflictError(FaceLedgerError):
    code = "conflict"


class ValidationError(FaceLedgerError):
    code = "invalid_input"


class AuthenticationError(FaceLedgerError):
    code = "unauthenticated"


class PermissionDeniedError(FaceLedgerError):
    """Refused by role, account state or policy; ``decision`` is the policy's Decision when one decided."""

    code = "forbidden"

    def __init__(self, message: str, decision: Decision | None = None) -> None:
        super().__init__(message)
        self.decision = decision


class VectorIndexError(FaceLedgerError):
    code = "index_error"


class EvaluationError(FaceLedgerError):
    code = "evaluation_error"
