"""The Python library: a :class:`Ledger` is an open data directory with its face pipeline.

::

    import faceledger

    with faceledger.open("~/faceledger-data") as ledger:
        ledger.create_gallery("arrests", legal_basis="...", source_description="...")
        ledger.enroll("arrests", "photos/", enrolled_by="j.smith", collected_on=date(2024, 1, 5))
        result = ledger.search("probe.jpg", galleries=["arrests"])
        for face in result.faces:
            for candidate in face.subjects:
                print(candidate.rank, candidate.subject_id, candidate.score)

The CLI is built on this module; both call the services in :mod:`faceledger.services`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from faceledger.config import Settings, load_settings
from faceledger.domain.models import DecodedImage, Gallery, ImageAnalysis, SearchResult, VerificationResult
from faceledger.pipeline.ingest import decode_image, load_image
from faceledger.services import enrolment, identification
from faceledger.services import galleries as gallery_service
from faceledger.services.datadir import DataDir, init_data_dir, open_data_dir

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


class Ledger:
    """An open data directory: galleries, enrolment, 1:N search and 1:1 verification.

    Models load on first use and stay loaded; close the ledger (or use ``with``) to stop
    the helper process the pipeline may start.
    """

    def __init__(self, data_dir: DataDir) -> None:
        self._dd = data_dir
        self._pipeline: Pipeline | None = None

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
        return gallery_service.create_gallery(
            self._dd,
            name,
            legal_basis=legal_basis,
            source_description=source_description,
            retention_days=retention_days,
            required_provenance=tuple(required_provenance),
        )

    def galleries(self) -> list[gallery_service.GalleryInfo]:
        return gallery_service.list_galleries(self._dd)

    def gallery(self, name: str) -> gallery_service.GalleryInfo:
        return gallery_service.gallery_info(self._dd, name)

    def purge_subject(self, gallery: str, subject_id: str) -> gallery_service.PurgeReport:
        """Remove a subject's images, faces and vectors for good."""
        return gallery_service.purge_subject(self._dd, gallery, subject_id)

    def purge_gallery(self, gallery: str) -> gallery_service.PurgeReport:
        """Remove a whole gallery: images, faces, vectors, records."""
        return gallery_service.purge_gallery(self._dd, gallery)

    # --- enrolment ---------------------------------------------------------------------

    def enroll(
        self,
        gallery: str,
        source: str | Path,
        *,
        enrolled_by: str,
        collected_on: date | None = None,
        quality_floor: float | None = None,
        workers: int | None = None,
        progress: enrolment.ProgressCallback | None = None,
    ) -> enrolment.EnrolmentResult:
        """Enrol a folder (one sub-folder per subject) or a CSV manifest (``*.csv``).

        Resumable: run it again after an interruption and it continues where it stopped.
        """
        options = enrolment.EnrolOptions(
            enrolled_by=enrolled_by, collected_on=collected_on, quality_floor=quality_floor, workers=workers
        )
        path = Path(source).expanduser()
        if path.suffix.lower() == ".csv":
            return enrolment.enrol_manifest(self._dd, gallery, path, options, progress=progress)
        return enrolment.enrol_folder(self._dd, gallery, path, options, progress=progress)

    # --- identification ----------------------------------------------------------------

    def analyze(self, image: ImageInput) -> ImageAnalysis:
        """Every face in an image: box, landmarks, quality and embedding."""
        return self.pipeline.analyze(read_image(image, self.settings))

    def search(
        self, probe: ImageInput, galleries: Sequence[str], *, top_k: int | None = None
    ) -> SearchResult:
        """1:N: every face of ``probe`` against ``galleries``; candidates are leads, not identifications."""
        return identification.search(
            self._dd, self.pipeline, read_image(probe, self.settings), galleries, top_k=top_k
        )

    def verify(self, first: ImageInput, second: ImageInput) -> VerificationResult:
        """1:1: is the largest face of ``first`` the same person as that of ``second``?"""
        return identification.verify(
            self.pipeline, self.settings, read_image(first, self.settings), read_image(second, self.settings)
        )


def open(
    data_dir: str | Path | None = None,
    *,
    create: bool = False,
    settings: Settings | None = None,
    **overrides: Any,
) -> Ledger:
    """Open a data directory (``create=True`` initialises it first if needed).

    ``data_dir`` defaults to ``$FACELEDGER_DATA_DIR`` or ``~/.local/share/faceledger``.
    Settings come from the data directory's config.toml and the environment unless
    ``settings`` is given; ``overrides`` then replace top-level settings (e.g. ``top_k=20``,
    ``threshold=0.95``).
    """
    if settings is None:
        settings = load_settings(data_dir)
    elif data_dir is not None:
        settings = settings.with_overrides(data_dir=Path(data_dir).expanduser())
    if overrides:
        settings = settings.with_overrides(**overrides)
    opener = init_data_dir if create else open_data_dir
    return Ledger(opener(settings.data_dir, settings=settings))


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
