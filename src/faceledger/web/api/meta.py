"""Whether the service is up, and which version it runs."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from faceledger import __version__
from faceledger.web.deps import EngineDep

router = APIRouter(prefix="/api/v1", tags=["service"])


class Health(BaseModel):
    status: str
    version: str
    models_loaded: bool


@router.get("/health", response_model=Health)
def health(engine: EngineDep) -> Health:
    """Up; ``models_loaded`` is false until the first face job loads the pipeline."""
    return Health(status="ok", version=__version__, models_loaded=engine.loaded)
