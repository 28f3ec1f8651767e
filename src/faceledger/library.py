"""The Python library: a :class:`Ledger` is an open data directory with its face pipeline.

On a data directory with accounts (every agency installation) the library acts as a person,
exactly as the service and the CLI do: open it with that person's API or session token (and
the device credential of the machine it runs on), and every gallery, enrolment, search and
comparison goes through the same services, the same policy decision and the same audit log::

    import faceledger

    with faceledger.open("/srv/faceledger", token="flt_...", device="lab-ws-03:...") as ledger:
        record = ledger.search(
            "probe.jpg", ["arrests"], case_number="2025/CID/004211", purpose="criminal_investigation"
        )
        for candidate in record.candidates:
            print(candidate.rank, candidate.subject_id, candidate.score)

Without a token, such a data directory refuses everything that touches a gallery, a search
or a comparison (and records the refusal). A data directory *without* accounts is one made
for offline work (evaluations, benchmarks): there the library needs no token, and each
search and comparison is recorded in its audit log as ``offline_use`` by ``library``;
gallery changes are recorded as they always are. :func:`detect` needs no data directory.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from faceledger.audit import events
from faceledger.config import Settings, load_settings
from faceledger.domain.models import DecodedImage, Gallery, ImageAnalysis, SearchResult, VerificationResult
from faceledger.domain.roles import Action
from faceledger.errors import PermissionDeniedError
from faceledger.pipeline.ingest import decode_image, load_image
from faceledger.services import audit, enrolment, identification
from faceledger.services import galleries as gallery_service
from faceledger.services.accounts import Principal, principal_from_token
from faceledger.services.accounts.rows import count_users
from faceledger.services.datadir import DataDir, init_data_dir, open_data_dir
from faceledger.services.devices import DeviceCredential
from faceledger.services.probes import Probe
from faceledger.services.search_records import SearchRecord, VerifyRecord
from faceledger.services.searches import SearchInput, VerifyInput, accountable_search, accountable_verify

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from faceledger.pipeline.run import Pipeline

ImageInput = str | Path | bytes | DecodedImage


def read_image(image: ImageInput, settings: Settings | None = None) -> DecodedImage:
    """Decode a path, raw bytes or an already decoded image (limits from ``settings``)."""
    limits = (settings or Settings()).image
    if isinstance(image, DecodedImage):
        return image
    if isinstance(image, bytes | bytearray | memoryview):
        return decode_image(bytes(image), source="<bytes>", limits=limits)
    return load_image(Path(image).expanduser(), limits=limits)


#: Rule a refusal cites when the library is used without a person on a data directory with accounts.
SIGN_IN_REQUIRED_RULE = "library.sign_in_required"


class Ledger:
    """An open data directory: galleries, enrolment, 1:N search and 1:1 verification.

    With ``token`` (an API token ``flt_...`` or a session token ``fls_...``) every call acts
    as that token's person: the token is checked again on every call, so a suspension or an
    expiry takes effect at once. Without one, only a data directory without accounts can be
    used (see the module docstring). Models load on first use and stay loaded; close the
    ledger (or use ``with``) to stop the helper process the pipeline may start.
    """

    def __init__(
        self, data_dir: DataDir, *, token: str | None = None, device: DeviceCredential | None = None
    ) -> None:
        self._dd = data_dir
        self._pipeline: Pipeline | None = None
        self._token = token
        self._device = device

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._dd.settings

    @property
    def data_dir(self) -> DataDir:
        return self._dd

    @property
    def pipeline(self) -> Pipeline:
        """The face pipeline of this data directory's settings (built on first use)."""
        if self._pipeline is None:
            from faceledger.pipeline.run import Pipeline

            self._pipeline = Pipeline.from_settings(self.settings)
        return self._pipeline

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
        self._dd.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- who is acting -----------------------------------------------------------------

    def principal(self) -> Principal | None:
        """The person this ledger acts for (checked now), or None on an offline data directory.

        Raises :class:`PermissionDeniedError` (recorded) when the data directory has accounts
        and no token was given, and :class:`AuthenticationError` for a token that is not valid now.
        """
        now = _now()
        if self._token is not None:
            return principal_from_token(self._dd, self._token, self._device, now=now)
        with self._dd.store.read() as conn:
            has_accounts = count_users(conn) > 0
        if has_accounts:
            reason = (
                "this data directory has accounts: open it as a person, "
                "faceledger.open(DIR, token=..., device=...), or use the service or the CLI"
            )
            with self._dd.store.begin() as conn:
                event = events.policy_denied(
                    events.LIBRARY_ACTOR,
                    attempted="library",
                    target="data_directory",
                    reason=reason,
                    decision={"allowed": False, "rule_id": SIGN_IN_REQUIRED_RULE, "reason": reason},
                )
                audit.record(self._dd, conn, event, now=now)
            raise PermissionDeniedError(f"refused: {reason} (rule {SIGN_IN_REQUIRED_RULE})")
        return None

    def _acting(self, action: Action, gallery: str) -> str:
        """Who to record for ``action`` on ``gallery``, once the one door let them through."""
        principal = self.principal()
        if principal is None:
            return events.LIBRARY_ACTOR
        return gallery_service.may_change(self._dd, principal, action, gallery, now=_now())

    def _record_offline(self, operation: str, target: str, details: dict[str, events.JsonValue]) -> None:
        with self._dd.store.begin() as conn:
            audit.record(
                self._dd, conn, events.offline_use(operation, target=target, details=details), now=_now()
            )

    # --- galleries ---------------------------------------------------------------------

    def create_gallery(
        self,
        name: str,
        *,
        legal_basis: str,
        source_description: str,
        retention_days: int | None = None,
        required_provenance: Sequence[str] = gallery_service.DEFAULT_REQUIRED,
    ) -> Gallery:
        """Create a gallery: the unit of lawful holding, with its legal basis and retention rule."""
        principal = self.principal()
        if principal is None:
            return gallery_service.create_gallery(
                self._dd,
                name,
                legal_basis=legal_basis,
                source_description=source_description,
                retention_days=retention_days,
                required_provenance=tuple(required_provenance),
                actor=events.LIBRARY_ACTOR,
            )
        return gallery_service.create_gallery_for(
            self._dd,
            principal,
            name,
            legal_basis=legal_basis,
            source_description=source_description,
            retention_days=retention_days,
            required_provenance=tuple(required_provenance),
            now=_now(),
        )

    def galleries(self) -> list[gallery_service.GalleryInfo]:
        self.principal()
        return gallery_service.list_galleries(self._dd)

    def gallery(self, name: str) -> gallery_service.GalleryInfo:
        self.principal()
        return gallery_service.gallery_info(self._dd, name)

    def purge_subject(
        self, gallery: str, subject_id: str, *, reason: str = "", authority: str = ""
    ) -> gallery_service.PurgeReport:
        """Remove a subject's images, faces and vectors for good (``reason`` and ``authority`` required)."""
        return self._purge(gallery, subject_id, reason=reason, authority=authority)

    def purge_gallery(
        self, gallery: str, *, reason: str = "", authority: str = ""
    ) -> gallery_service.PurgeReport:
        """Remove a whole gallery for good (``reason`` and ``authority`` required)."""
        return self._purge(gallery, None, reason=reason, authority=authority)

    def _purge(
        self, gallery: str, subject_id: str | None, *, reason: str, authority: str
    ) -> gallery_service.PurgeReport:
        principal = self.principal()
        if principal is not None:
            return gallery_service.purge_for(
                self._dd, principal, gallery, subject_id, reason=reason, authority=authority, now=_now()
            )
        if subject_id is None:
            return gallery_service.purge_gallery(
                self._dd, gallery, reason=reason, authority=authority, actor=events.LIBRARY_ACTOR
            )
        return gallery_service.purge_subject(
            self._dd, gallery, subject_id, reason=reason, authority=authority, actor=events.LIBRARY_ACTOR
        )

    # --- enrolment ---------------------------------------------------------------------

    def enroll(
        self,
        gallery: str,
        source: str | Path,
        *,
        enrolled_by: str | None = None,
        collected_on: date | None = None,
        quality_floor: float | None = None,
        workers: int | None = None,
        progress: enrolment.ProgressCallback | None = None,
    ) -> enrolment.EnrolmentResult:
        """Enrol a folder (one sub-folder per subject) or a CSV manifest (``*.csv``).

        ``enrolled_by`` is recorded with each image; it defaults to the person acting (or
        ``library`` offline). Resumable: run it again after an interruption and it
        continues where it stopped.
        """
        actor = self._acting(Action.ENROL, gallery)
        options = enrolment.EnrolOptions(
            enrolled_by=enrolled_by or actor,
            collected_on=collected_on,
            quality_floor=quality_floor,
            workers=workers,
        )
        path = Path(source).expanduser()
        if path.suffix.lower() == ".csv":
            return enrolment.enrol_manifest(self._dd, gallery, path, options, progress=progress)
        return enrolment.enrol_folder(self._dd, gallery, path, options, progress=progress)

    # --- identification ----------------------------------------------------------------

    def analyze(self, image: ImageInput) -> ImageAnalysis:
        """Every face in an image: box, landmarks, quality and embedding (touches no gallery)."""
        return self.pipeline.analyze(read_image(image, self.settings))

    def search(
        self,
        probe: ImageInput,
        galleries: Sequence[str],
        *,
        case_number: str | None = None,
        purpose: str | None = None,
        justification: str | None = None,
        top_k: int | None = None,
    ) -> SearchResult | SearchRecord:
        """1:N: the probe against ``galleries``; candidates are leads, not identifications.

        Acting as a person, this is an accountable search (a :class:`SearchRecord`: decided by
        the policy, bound to ``case_number`` and ``purpose``, recorded), of the probe's largest
        face. Offline, every face of the probe is searched and the search is recorded as
        ``offline_use`` (a :class:`SearchResult`).
        """
        principal = self.principal()
        if principal is not None:
            request = SearchInput(
                case_number=case_number,
                purpose=purpose,
                galleries=tuple(galleries),
                justification=justification,
                top_k=top_k,
            )
            return accountable_search(
                self._dd, self.pipeline, principal, _probe(probe, self.settings), request, now=_now()
            )
        decoded = read_image(probe, self.settings)
        result = identification.search(self._dd, self.pipeline, decoded, galleries, top_k=top_k)
        self._record_offline(
            "search",
            ",".join(f"gallery:{g}" for g in galleries) or "search",
            {
                "probe_sha256": decoded.sha256,
                "galleries": list(galleries),
                "faces": len(result.faces),
                "candidates": sum(len(face.subjects) for face in result.faces),
            },
        )
        return result

    def verify(
        self,
        first: ImageInput,
        second: ImageInput,
        *,
        case_number: str | None = None,
        purpose: str | None = None,
        justification: str | None = None,
    ) -> VerificationResult | VerifyRecord:
        """1:1: is the largest face of ``first`` the same person as that of ``second``?

        Acting as a person this is an accountable comparison (a :class:`VerifyRecord`);
        offline it is recorded as ``offline_use`` (a :class:`VerificationResult`).
        """
        principal = self.principal()
        if principal is not None:
            request = VerifyInput(case_number=case_number, purpose=purpose, justification=justification)
            return accountable_verify(
                self._dd,
                self.pipeline,
                principal,
                _probe(first, self.settings),
                _probe(second, self.settings),
                request,
                now=_now(),
            )
        one, two = read_image(first, self.settings), read_image(second, self.settings)
        result = identification.verify(self.pipeline, self.settings, one, two)
        self._record_offline("verify", "verify", {"first_sha256": one.sha256, "second_sha256": two.sha256})
        return result


def _now() -> datetime:
    return datetime.now(UTC)


def _probe(image: ImageInput, settings: Settings) -> Probe:
    """A probe as the accountable services keep it: its exact bytes."""
    if isinstance(image, DecodedImage):
        raise TypeError("an accountable search keeps the probe's exact bytes: pass a path or bytes")
    if isinstance(image, bytes | bytearray | memoryview):
        return Probe(bytes(image), source="<bytes>")
    return Probe.from_path(Path(image), settings.image)


def open(
    data_dir: str | Path | None = None,
    *,
    token: str | None = None,
    device: str | DeviceCredential | None = None,
    create: bool = False,
    settings: Settings | None = None,
    **overrides: Any,
) -> Ledger:
    """Open a data directory (``create=True`` initialises it first if needed).

    ``token`` and ``device`` (``<device-id>:<secret>``) make the ledger act as a person (see
    :class:`Ledger`). ``data_dir`` defaults to ``$FACELEDGER_DATA_DIR`` or
    ``~/.local/share/faceledger``. Settings come from the data directory's config.toml and
    the environment unless ``settings`` is given; ``overrides`` then replace top-level
    settings (e.g. ``top_k=20``, ``threshold=0.95``).
    """
    if settings is None:
        settings = load_settings(data_dir)
    elif data_dir is not None:
        settings = settings.with_overrides(data_dir=Path(data_dir).expanduser())
    if overrides:
        settings = settings.with_overrides(**overrides)
    credential = DeviceCredential.parse(device) if isinstance(device, str) else device
    opener = init_data_dir if create else open_data_dir
    return Ledger(opener(settings.data_dir, settings=settings), token=token, device=credential)


@functools.lru_cache(maxsize=1)
def _default_pipeline() -> Pipeline:
    from faceledger.pipeline.run import Pipeline

    return Pipeline.from_settings(Settings(), parallel_flip=False)


def detect(image: ImageInput | npt.NDArray[np.uint8]) -> ImageAnalysis:
    """Every face in an image with the default models: box, 5 landmarks, quality, embedding.

    Accepts a path, raw bytes, a :class:`DecodedImage` or an RGB ``uint8`` array (H x W x 3).
    Needs no data directory.
    """
    pipeline = _default_pipeline()
    if isinstance(image, ImageInput):
        return pipeline.analyze(read_image(image))
    import hashlib

    import numpy as np

    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        from faceledger.errors import ImageError

        raise ImageError(f"an image array must be H x W x 3 RGB uint8, got shape {pixels.shape}")
    decoded = DecodedImage(
        pixels=pixels,
        sha256=hashlib.sha256(pixels.tobytes()).hexdigest(),
        format="array",
        source="<array>",
        original_mode="RGB",
    )
    return pipeline.analyze(decoded)
