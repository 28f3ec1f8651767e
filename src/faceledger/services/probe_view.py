"""The probe of a stored search as a picture and its faces, for the results pages; searching another face.

The searched image comes from :func:`faceledger.services.searches.viewed_probe`: the submitted
probe with its recorded edits replayed and checked against their hashes, shown only after the
door allowed ``view_face_image`` (second factor and a registered device) and ``view_case`` in
the search's unit, and recorded as ``probe_viewed``.

A search searches the largest face of its probe. :func:`probe_faces` analyses the searched
image again (a probe the policy already allowed and that was searched) to show every face it
holds with its quality; :func:`search_face` searches one of the others: a new accountable
search of the same stored probe, case, purpose, galleries and reasons, with the recorded edits
and a crop to that face appended, so the policy decides again and the derived probe is
recorded with its parent's hash.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from faceledger.domain.models import QualityReport
from faceledger.errors import NotFoundError
from faceledger.pipeline.edit import MIN_SIDE, Crop
from faceledger.services import searches
from faceledger.services.datadir import DataDir
from faceledger.services.identification import Analyzer
from faceledger.services.policies import Principal
from faceledger.services.probes import Probe, probe_store
from faceledger.services.search_records import SearchRecord

#: Room kept around the face when only the face is asked for, as a share of the box's size.
FACE_MARGIN = 0.25


def _around(box: dict[str, float], width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown by :data:`FACE_MARGIN` on each side, in whole pixels inside the image."""
    w, h = box["right"] - box["left"], box["bottom"] - box["top"]
    left = max(0, int(box["left"] - FACE_MARGIN * w))
    top = max(0, int(box["top"] - FACE_MARGIN * h))
    right = min(width, int(box["right"] + FACE_MARGIN * w) + 1)
    bottom = min(height, int(box["bottom"] + FACE_MARGIN * h) + 1)
    return left, top, right, bottom


def probe_png(dd: DataDir, principal: Principal, search_id: int, *, face_only: bool, now: datetime) -> bytes:
    """The searched image of search ``search_id`` as PNG; ``face_only``: cut to the searched face."""
    record, searched = searches.viewed_probe(dd, principal, search_id, now=now)
    image = Image.fromarray(searched.pixels)
    box = (record.probe_face or {}).get("box")
    if face_only and isinstance(box, dict):
        left, top, right, bottom = _around(box, image.width, image.height)
        if right > left and bottom > top:
            image = image.crop((left, top, right, bottom))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class ProbeFace:
    """One face found in a search's searched image; ``searched``: the one the search searched."""

    index: int
    box: dict[str, float]
    quality: QualityReport
    searched: bool


@dataclass(frozen=True, slots=True)
class ProbeFaces:
    search: SearchRecord
    width: int
    height: int
    faces: tuple[ProbeFace, ...]


def probe_faces(
    dd: DataDir, analyzer: Analyzer, principal: Principal, search_id: int, *, now: datetime
) -> ProbeFaces:
    """Every face of the searched image of search ``search_id``, largest first, with its quality."""
    record, image = searches.viewed_probe(dd, principal, search_id, now=now)
    analysis = analyzer.analyze(image)
    faces = tuple(
        ProbeFace(face.index, face.face.box.to_dict(), face.quality, number == 0)
        for number, face in enumerate(analysis.faces)
    )
    height, width = image.pixels.shape[:2]
    return ProbeFaces(record, int(width), int(height), faces)


def search_face(
    dd: DataDir, analyzer: Analyzer, principal: Principal, search_id: int, face_index: int, *, now: datetime
) -> SearchRecord:
    """Search face ``face_index`` of search ``search_id``'s probe: a new search (see the module)."""
    found = probe_faces(dd, analyzer, principal, search_id, now=now)
    face = next((f for f in found.faces if f.index == face_index), None)
    if face is None:
        raise NotFoundError(f"the probe of search {search_id} has no face {face_index}")
    left, top, right, bottom = _around(face.box, found.width, found.height)
    right, bottom = (
        max(right, min(found.width, left + MIN_SIDE)),
        max(bottom, min(found.height, top + MIN_SIDE)),
    )
    record = found.search
    edits = (*(step.edit for step in record.edits), Crop(left, top, right, bottom))
    data = probe_store(dd).read(record.probe_sha256)
    request = searches.SearchInput(
        case_number=record.case_number,
        purpose=record.purpose,
        galleries=record.galleries,
        justification=record.justification,
        on_behalf_of=record.on_behalf_of,
        agreement_ref=record.agreement_ref,
        top_k=record.top_k,
        edits=edits,
    )
    probe = Probe(data, f"probe {record.probe_sha256[:12]} of search {search_id}, face {face_index}")
    return searches.accountable_search(dd, analyzer, principal, probe, request, now=now)
