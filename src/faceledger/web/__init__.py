"""The HTTP service (FastAPI): :func:`create_app`; run it with ``faceledger serve``."""

from __future__ import annotations

from faceledger.web.app import create_app

__all__ = ["create_app"]
