"""Reading an uploaded image: whole, but never more than the image byte limit.

The body limit (:mod:`faceledger.web.limits`) caps the request; this caps each file at the
limit images have everywhere else (``[image] max_bytes``), so a too-large photo gets the
same ``image_too_large`` answer over the API as from the command line. Decoding (and every
check on what the bytes are) is left to :func:`faceledger.pipeline.ingest.decode_image`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import UploadFile

from faceledger.config import ImageLimits
from faceledger.errors import ImageTooLargeError, ValidationError

CHUNK = 1024 * 1024
#: What the document says of every uploaded file: it is not empty (an empty one is refused, 422).
NOT_EMPTY: dict[str, Any] = {"minLength": 1}

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def upload_name(upload: UploadFile, field: str) -> str:
    """A name for the upload in messages and records (its client-side file name, made safe)."""
    name = _UNSAFE.sub("_", (upload.filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")
    return f"upload:{name[:100] or field}"


async def read_upload(upload: UploadFile, field: str, limits: ImageLimits) -> bytes:
    """The file's bytes; :class:`ImageTooLargeError` as soon as it passes ``limits.max_bytes``."""
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limits.max_bytes:
            raise ImageTooLargeError(
                f"{upload_name(upload, field)}: more than {limits.max_bytes:,} bytes; the limit is "
                f"{limits.max_bytes:,} (setting [image] max_bytes)"
            )
        parts.append(chunk)
    if size == 0:
        raise ValidationError(f"{upload_name(upload, field)}: the uploaded file is empty")
    return b"".join(parts)
