"""Probe photos: kept exactly as submitted, for as long as the policy says, then removed.

Probe files live content-addressed under ``<data_dir>/probes/`` (the same layout and
write discipline as gallery images, :mod:`faceledger.adapters.images`), apart from the
galleries: a probe is evidence in a case, not a lawfully held reference image. Each has a
record (``probes``) with its sha256, format and size; when retention removes the file the
record stays, so the hash of what was searched is never lost.

How long a probe is kept comes from the policy (``[retention.probe_days]``): the
``default`` period from the search, then the period for how its review ended
(``no_lead``, ``rejected``, ``approved``) from that moment. A probe used by several
searches is kept while any of them needs it. A refused search never stores its probe.
An examiner's edits are not stored as files: they are re-derived from the original and
checked against their recorded hashes (:func:`probe_images`).
"""

from __future__ import annotations

import contextlib
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.engine import Connection

from faceledger.adapters.images import ImageStore, sha256_hex
from faceledger.adapters.store.tables_cases import probes, searches
from faceledger.audit import events as ev
from faceledger.audit.events import SYSTEM_ACTOR
from faceledger.config import ImageLimits
from faceledger.domain.models import DecodedImage
from faceledger.errors import ImageError, NotFoundError, ValidationError
from faceledger.pipeline.edit import EditResult, replay_edits
from faceledger.pipeline.ingest import decode_image
from faceledger.services import audit
from faceledger.services.datadir import DataDir
from faceledger.services.policies import utc
from faceledger.services.search_records import SearchRecord, insert_or_get

PROBES_DIR = "probes"
#: A probe file no record names is removed by the purge only once it is this old (a search
#: writes its file just before committing its record).
ORPHAN_GRACE = timedelta(hours=1)


def probe_store(dd: DataDir) -> ImageStore:
    """Probe photos as submitted, named by the sha256 of their bytes."""
    return ImageStore(dd.path / PROBES_DIR)


@dataclass(frozen=True, slots=True)
class Probe:
    """A probe photo as submitted: its exact bytes are the evidence, so they travel undecoded."""

    data: bytes = field(repr=False)
    source: str

    @property
    def sha256(self) -> str:
        return sha256_hex(self.data)

    @classmethod
    def from_path(cls, path: Path | str, limits: ImageLimits = ImageLimits()) -> Probe:  # noqa: B008 - frozen
        """Read a probe file (size-checked before reading)."""
        file = Path(path).expanduser()
        try:
            info = file.stat()
            if not stat.S_ISREG(info.st_mode):
                raise ImageError(f"{file}: not a regular file")
            if info.st_size > limits.max_bytes:
                raise ImageError(f"{file}: {info.st_size:,} bytes; the limit is {limits.max_bytes:,}")
            data = file.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{file}: no such file") from None
        except OSError as exc:
            raise ImageError(f"{file}: cannot be read ({exc.strerror or exc})") from None
        return cls(data, str(file))


@dataclass(frozen=True, slots=True)
class ProbePurgeReport:
    purged: tuple[str, ...]
    files_removed: int


def keep_probe_file(dd: DataDir, probe: Probe) -> None:
    store = probe_store(dd)
    if not store.exists(probe.sha256):
        store.put(probe.data)


def ensure_probe(conn: Connection, image: DecodedImage, byte_size: int, now: datetime) -> int:
    probe_id = insert_or_get(
        conn, probes, "sha256", image.sha256,
        format=image.format, width=image.width, height=image.height, byte_size=byte_size, first_seen_at=now,
    )  # fmt: skip
    # Submitted again after retention removed it: the file is kept again from now on.
    conn.execute(update(probes).where(probes.c.id == probe_id).values(purged_at=None))
    return probe_id


@dataclass(frozen=True, slots=True, eq=False)
class ProbeImages:
    """The probe as submitted and as searched (re-derived from the recorded edits)."""

    original: DecodedImage
    searched: EditResult


def probe_images(dd: DataDir, record: SearchRecord) -> ProbeImages:
    """The original probe and the searched image, checked against every recorded hash.

    :class:`NotFoundError` once retention has removed the probe file (its hash stays on record).
    """
    if record.probe_purged:
        raise NotFoundError(
            f"the probe of search {record.search_id} (sha256 {record.probe_sha256}) was removed by retention"
        )
    data = probe_store(dd).read(record.probe_sha256)
    original = decode_image(data, source=f"probe {record.probe_sha256[:12]}", limits=dd.settings.image)
    searched = replay_edits(original.pixels, record.edits)
    expected = record.searched_sha256 if record.edits else original.sha256
    actual = searched.sha256 if record.edits else original.sha256
    if actual != expected:
        raise ValidationError(
            f"search {record.search_id}: the re-derived probe does not match the recorded hash"
        )
    return ProbeImages(original, searched)


def set_probe_retention(conn: Connection, search_id: int, until: datetime) -> None:
    """Keep a search's probe until ``until`` (the review's outcome decides; see reviews)."""
    conn.execute(update(searches).where(searches.c.id == search_id).values(probe_retain_until=utc(until)))


def purge_expired_probes(dd: DataDir, *, now: datetime) -> ProbePurgeReport:
    """Remove probe files no search needs any more; their records and hashes stay.

    A probe is kept while any search that used it is within its retention. Also removes
    files left by a search that failed before committing (after :data:`ORPHAN_GRACE`).
    """
    moment = utc(now)
    needed = exists().where(
        or_(searches.c.probe_id == probes.c.id, searches.c.second_probe_id == probes.c.id),
        searches.c.probe_retain_until > moment,
    )
    with dd.store.begin() as conn:
        unneeded = and_(probes.c.purged_at.is_(None), ~needed)
        rows = conn.execute(select(probes.c.sha256).where(unneeded).order_by(probes.c.id))
        expired = [r.sha256 for r in rows]
        if expired:
            conn.execute(update(probes).where(probes.c.sha256.in_(expired)).values(purged_at=moment))
            event = ev.probes_purged(SYSTEM_ACTOR, sha256s=expired, reason="probe retention period ended")
            audit.record(dd, conn, event, now=moment)
        known = {
            r.sha256: r.purged_at is None for r in conn.execute(select(probes.c.sha256, probes.c.purged_at))
        }
    removed = _remove_unneeded_files(probe_store(dd), known)
    return ProbePurgeReport(tuple(expired), removed)


def _remove_unneeded_files(store: ImageStore, known: dict[str, bool]) -> int:
    """Delete files of purged probes, and files no probe record names once they are old enough."""
    removed = 0
    for sha in list(store.hashes()):
        kept = known.get(sha)
        if kept:
            continue
        if kept is None:  # no record (yet): maybe a search about to commit
            with contextlib.suppress(OSError):
                age = time.time() - store.path_for(sha).stat().st_mtime
                if age < ORPHAN_GRACE.total_seconds():
                    continue
        removed += store.delete(sha)
    return removed
