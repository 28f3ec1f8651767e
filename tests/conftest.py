"""Shared fixtures. Real face photos come from ../shared/faces and are never copied in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FACES_DIR = Path(os.environ.get("FACELEDGER_TEST_FACES", REPO.parent / "shared" / "faces"))
LFW_DIR = FACES_DIR / "lfw"


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The LFW DevTrain folder (images/, pairsDevTrain.txt, peopleDevTrain.txt)."""
    if not (LFW_DIR / "images").is_dir():
        pytest.skip(
            f"real face photos not found at {LFW_DIR}: these tests need ../shared/faces/lfw "
            "(or FACELEDGER_TEST_FACES pointing at a folder that holds lfw/)"
        )
    return LFW_DIR


@pytest.fixture(scope="session")
def lfw_images(lfw_dir: Path) -> Path:
    return lfw_dir / "images"
