"""The probe of a stored search as a picture, for the results page to show beside its candidates.

The searched image (the submitted probe with its recorded edits replayed and checked against
their hashes, :func:`faceledger.services.probes.probe_images`) is a face photo like a
gallery's: showing it needs ``view_face_image`` (second factor and a registered device) and
``view_case``, asked of the door before anything about the search is looked up, and the
search's unit (another unit's search answers as if it did not exist).
"""

from __future__ import annotations

import io
from datetime import datetime

from PIL import Image

from faceledger.domain.roles import Action
from faceledger.services.authorization import authorize
from faceledger.services.datadir import DataDir
from faceledger.services.policies import Principal, utc
from faceledger.services.probes import probe_images
from faceledger.services.scoping import require_search_unit
from faceledger.services.search_records import case_if_any, load_search

#: Room kept around the face when only the face is asked for, as a share of the box's size.
FACE_MARGIN = 0.25


def probe_png(dd: DataDir, principal: Principal, search_id: int, *, face_only: bool, now: datetime) -> bytes:
    """The searched image of search ``search_id`` as PNG; ``face_only``: cut to the searched face."""
    moment = utc(now)
    authorize(
        dd, principal, [Action.VIEW_FACE_IMAGE], target=f"search:{search_id}/probe", now=moment,
        search_id=search_id,
    )  # fmt: skip
    with dd.store.read() as conn:
        case_number = case_if_any(conn, search_id)
    authorize(
        dd, principal, [Action.VIEW_CASE], target=f"search:{search_id}", now=moment, case_number=case_number
    )
    require_search_unit(dd, principal, search_id, action=Action.VIEW_CASE, now=moment, read_only=True)
    with dd.store.read() as conn:
        record = load_search(conn, search_id)
    image = Image.fromarray(probe_images(dd, record).searched.pixels)
    box = (record.probe_face or {}).get("box")
    if face_only and isinstance(box, dict):
        width, height = box["right"] - box["left"], box["bottom"] - box["top"]
        left = max(0, int(box["left"] - FACE_MARGIN * width))
        top = max(0, int(box["top"] - FACE_MARGIN * height))
        right = min(image.width, int(box["right"] + FACE_MARGIN * width) + 1)
        bottom = min(image.height, int(box["bottom"] + FACE_MARGIN * height) + 1)
        if right > left and bottom > top:
            image = image.crop((left, top, right, bottom))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
