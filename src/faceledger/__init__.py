"""faceledger: accountable face identification over controlled galleries.

The public Python API::

    import faceledger

    faces = faceledger.detect("photo.jpg")             # no data directory needed
    with faceledger.open("~/faceledger-data") as ledger:
        result = ledger.search("probe.jpg", galleries=["arrests"])

The names below are loaded on first use, so that ``import faceledger`` (and every worker
process that imports a submodule) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Ledger", "__version__", "detect", "open"]

if TYPE_CHECKING:
    from faceledger.library import Ledger, detect, open


def __getattr__(name: str) -> Any:
    if name in {"Ledger", "detect", "open"}:
        from faceledger import library

        return getattr(library, name)
    raise AttributeError(f"module 'faceledger' has no attribute {name!r}")
