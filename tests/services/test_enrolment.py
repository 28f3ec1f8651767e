"""Enrolment with the real pipeline on real LFW photos.

Expectations come from the same pipeline run directly on each photo (never hard-coded),
so these tests check what enrolment does with an analysis: what it stores, what it skips
and why, and that the index always matches the database.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from accounts_helpers import audit_rows, details
from PIL import Image
from sqlalchemy import select

from faceledger.adapters.index import open_index
from faceledger.adapters.store import repository
from faceledger.adapters.store import tables as t
from faceledger.config import Settings
from faceledger.domain.face_choice import Ambiguous, ChoiceRule, choose_subject_face
from faceledger.domain.models import DecodedImage, ImageAnalysis, ModelRef
from faceledger.errors import ConflictError, NoFaceError, ProvenanceError, ValidationError
from faceledger.pipeline.ingest import load_image
from faceledger.pipeline.run import Pipeline
from faceledger.services import galleries
from faceledger.services.datadir import DataDir, init_data_dir, open_data_dir
from faceledger.services.enrolment import (
    EnrolmentInterrupted,
    EnrolmentResult,
    EnrolOptions,
    Progress,
    SkipReason,
    enrol_folder,
    enrol_image,
    enrol_manifest,
    read_manifest,
)
from faceledger.services.enrolment.job import SMALL_BATCH, worker_count

pytestmark = pytest.mark.faces

PEOPLE = ("Al_Gore", "Ai_Sugiyama", "Al_Sharpton")
PER_PERSON = 2
COLLECTED = date(2024, 2, 1)
RETENTION_DAYS = 365
FLOOR = Settings().quality_floor


class CachingAnalyzer:
    """The real pipeline, remembering each image's analysis so a photo is analysed once per module."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.cache: dict[str, ImageAnalysis] = {}

    @property
    def model(self) -> ModelRef:
        return self.pipeline.model

    def analyze(self, image: DecodedImage) -> ImageAnalysis:
        if image.sha256 not in self.cache:
            self.cache[image.sha256] = self.pipeline.analyze(image)
        return self.cache[image.sha256]

    def expected(self, path: Path, floor: float = FLOOR) -> SkipReason | None:
        """What enrolment should do with this photo: None to enrol it, else why not."""
        analysis = self.analyze(load_image(path))
        faces = analysis.faces
        choice = choose_subject_face([f.face.box for f in faces], analysis.width, analysis.height)
        if choice is None:
            return SkipReason.NO_FACE
        if isinstance(choice, Ambiguous):
            return SkipReason.SEVERAL_FACES
        return SkipReason.LOW_QUALITY if faces[choice.index].quality.score < floor else None


@pytest.fixture(scope="module")
def analyzer(lfw_images: Path) -> Iterator[CachingAnalyzer]:
    pipeline = Pipeline.from_settings(Settings())
    yield CachingAnalyzer(pipeline)
    pipeline.close()


@pytest.fixture
def photos(lfw_images: Path, tmp_path: Path) -> Path:
    """``photos/<person>/<file>.jpg``: a small folder in the one-sub-folder-per-subject layout."""
    root = tmp_path / "photos"
    for person in PEOPLE:
        (root / person).mkdir(parents=True)
        for source in sorted((lfw_images / person).glob("*.jpg"))[:PER_PERSON]:
            shutil.copy(source, root / person / source.name)
    return root


@pytest.fixture
def dd(tmp_path: Path) -> Iterator[DataDir]:
    opened = init_data_dir(tmp_path / "data")
    galleries.create_gallery(
        opened,
        "custody",
        legal_basis="PACE s.64A",
        source_description="LFW test",
        retention_days=RETENTION_DAYS,
    )
    yield opened
    opened.close()


def _options(**changes: object) -> EnrolOptions:
    base: dict[str, object] = {"enrolled_by": "DC 1234 Smith", "collected_on": COLLECTED}
    base.update(changes)
    return EnrolOptions(**base)  # type: ignore[arg-type]


def _face_ids(dd: DataDir) -> list[int]:
    with dd.store.read() as conn:
        return sorted(conn.execute(select(t.faces.c.id)).scalars())


def _saved_index_ids(dd: DataDir, model: ModelRef) -> list[int]:
    """What is on disk, as another process would load it."""
    index = open_index(dd.index_dir("custody", model.key), dim=model.dim, settings=dd.settings.index)
    return sorted(index.ids().tolist())


def _reasons(result: EnrolmentResult) -> dict[str, SkipReason]:
    return {Path(s.source).name: s.reason for s in result.skipped}


# --- the happy path --------------------------------------------------------------------


def test_enrol_folder_stores_faces_provenance_files_and_vectors(
    dd: DataDir, photos: Path, analyzer: CachingAnalyzer
) -> None:
    files = sorted(photos.rglob("*.jpg"))
    expected = {p.name: analyzer.expected(p) for p in files}
    seen: list[Progress] = []

    result = enrol_folder(dd, "custody", photos, _options(), pipeline=analyzer, progress=seen.append)

    assert sum(r is None for r in expected.values()) >= 4, "fixture photos should mostly be enrollable"
    assert sorted(Path(e.source).name for e in result.enrolled) == sorted(
        n for n, r in expected.items() if r is None
    )
    assert _reasons(result) == {n: r for n, r in expected.items() if r is not None}
    assert [p.done for p in seen] == list(range(1, len(files) + 1))
    assert seen[-1].total == len(files)
    assert result.model_key == analyzer.model.key

    with dd.store.read() as conn:
        for enrolled in result.enrolled:
            path = Path(enrolled.source)
            image = repository.find_image(conn, 1, enrolled.sha256)
            face = conn.execute(select(t.faces).where(t.faces.c.id == enrolled.face_id)).one()
            analysed = analyzer.analyze(load_image(path)).faces[0]
            assert image is not None
            assert image.provenance.source == str(path.resolve())
            assert image.provenance.collected_on == COLLECTED
            assert image.provenance.enrolled_by == "DC 1234 Smith"
            assert image.provenance.retention_until == COLLECTED + timedelta(days=RETENTION_DAYS)
            assert (image.width, image.height, image.format) == (250, 250, "JPEG")
            assert dd.images.read(enrolled.sha256) == path.read_bytes()
            assert face.box == analysed.face.box.to_dict()
            assert face.quality["score"] == pytest.approx(analysed.quality.score, abs=0.05)
            np.testing.assert_allclose(
                repository.decode_embedding(face.embedding), analysed.embedding.vector, atol=1e-7
            )
            assert enrolled.subject_id == path.parent.name
        run = conn.execute(select(t.enrolment_runs)).one()
    assert (run.status, run.enrolled, run.skipped) == ("done", len(result.enrolled), len(result.skipped))

    assert _saved_index_ids(dd, analyzer.model) == _face_ids(dd) == sorted(e.face_id for e in result.enrolled)
    index = dd.index(galleries.get_gallery(dd, "custody"), analyzer.model)
    for enrolled in result.enrolled:
        vector = analyzer.analyze(load_image(enrolled.source)).faces[0].embedding.vector
        scores, ids = index.search(vector[None, :], 1)
        assert ids[0, 0] == enrolled.face_id
        assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_rerun_skips_everything_already_enrolled(
    dd: DataDir, photos: Path, analyzer: CachingAnalyzer
) -> None:
    first = enrol_folder(dd, "custody", photos, _options(), pipeline=analyzer)
    faces_before = _face_ids(dd)

    second = enrol_folder(dd, "custody", photos, _options(), pipeline=analyzer)

    assert second.enrolled == ()
    assert {Path(s.source).name for s in second.skipped if s.reason == SkipReason.ALREADY_ENROLLED} == {
        Path(e.source).name for e in first.enrolled
    }
    assert _face_ids(dd) == faces_before
    assert galleries.gallery_info(dd, "custody").counts.images == len(first.enrolled)


# --- skips -----------------------------------------------------------------------------


def test_every_skip_has_its_reason(
    dd: DataDir, photos: Path, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    odd = photos / "ODD-1"
    odd.mkdir()
    Image.new("RGB", (250, 250), (128, 128, 128)).save(odd / "grey.png")
    pair = Image.new("RGB", (500, 250))
    pair.paste(Image.open(lfw_images / "Al_Gore" / "Al_Gore_0001.jpg"), (0, 0))
    pair.paste(Image.open(lfw_images / "Ai_Sugiyama" / "Ai_Sugiyama_0001.jpg"), (250, 0))
    pair.save(odd / "pair.jpg")
    (odd / "notes.jpg").write_text("not an image")
    shutil.copy(next(iter(sorted((photos / "Al_Gore").glob("*.jpg")))), odd / "copy.jpg")
    (photos / "stray.jpg").write_bytes(b"top level")
    assert analyzer.expected(odd / "pair.jpg") == SkipReason.SEVERAL_FACES

    result = enrol_folder(dd, "custody", photos, _options(), pipeline=analyzer)

    reasons = _reasons(result)
    assert reasons["grey.png"] == SkipReason.NO_FACE
    assert reasons["pair.jpg"] == SkipReason.SEVERAL_FACES
    assert reasons["notes.jpg"] == SkipReason.UNREADABLE
    assert reasons["stray.jpg"] == SkipReason.BAD_ROW
    assert reasons["copy.jpg"] == SkipReason.DUPLICATE
    detail = {Path(s.source).name: s.detail for s in result.skipped}
    assert "2 faces" in detail["pair.jpg"]
    assert "notes.jpg" in detail["notes.jpg"]
    assert "ODD-1" not in {e.subject_id for e in result.enrolled}
    with dd.store.read() as conn:
        recorded = conn.execute(select(t.enrolment_skips.c.reason)).scalars().all()
    assert sorted(recorded) == sorted(str(s.reason) for s in result.skipped)


def _dominated(lfw_images: Path) -> Image.Image:
    """Al Gore's photo enlarged at the centre, a smaller face of Ai Sugiyama in the corner."""
    canvas = Image.new("RGB", (640, 480), (90, 90, 90))
    canvas.paste(Image.open(lfw_images / "Al_Gore" / "Al_Gore_0001.jpg").resize((400, 400)), (120, 40))
    canvas.paste(Image.open(lfw_images / "Ai_Sugiyama" / "Ai_Sugiyama_0001.jpg").crop((55, 55, 195, 195)))
    return canvas


def _row_of_three(lfw_images: Path) -> Image.Image:
    """Three press photos side by side: Al Gore's in the middle, at the centre of the whole."""
    canvas = Image.new("RGB", (750, 250))
    for x, person in ((0, "Ai_Sugiyama"), (250, "Al_Gore"), (500, "Al_Sharpton")):
        canvas.paste(Image.open(lfw_images / person / f"{person}_0001.jpg"), (x, 0))
    return canvas


def test_a_photo_with_several_faces_enrols_the_one_that_clearly_dominates(
    dd: DataDir, tmp_path: Path, lfw_images: Path, analyzer: CachingAnalyzer
) -> None:
    folder = tmp_path / "group"
    (folder / "GORE-1").mkdir(parents=True)
    _dominated(lfw_images).save(folder / "GORE-1" / "dominated.jpg")
    _row_of_three(lfw_images).save(folder / "GORE-1" / "row.png")  # lossless: the boxes as drawn
    found = {
        name: analyzer.analyze(load_image(folder / "GORE-1" / name)).faces
        for name in ("dominated.jpg", "row.png")
    }
    assert [len(faces) for faces in found.values()] == [2, 3]  # the detector sees every face
    alone = analyzer.analyze(load_image(lfw_images / "Al_Gore" / "Al_Gore_0001.jpg")).faces[0]

    result = enrol_folder(dd, "custody", folder, _options(), pipeline=analyzer)

    assert result.skipped == ()
    rules = {Path(e.source).name: e.face_choice for e in result.enrolled}
    assert rules == {"dominated.jpg": ChoiceRule.LARGEST, "row.png": ChoiceRule.CENTRE}
    assert result.chosen_by_rule() == {"largest": 1, "centre": 1}
    with dd.store.read() as conn:
        rows = conn.execute(
            select(t.images.c.source, t.images.c.face_choice, t.faces.c.face_index, t.faces.c.embedding).join(
                t.faces, t.faces.c.image_id == t.images.c.id
            )
        ).all()
    for row in rows:
        name = Path(row.source).name
        assert row.face_choice["rule"] == rules[name]
        assert row.face_choice["faces_found"] == len(found[name])
        assert row.face_choice["face_index"] == row.face_index
        # The chosen face is Al Gore's: much nearer his own photo than the other faces are.
        vector = repository.decode_embedding(row.embedding)
        faces = found[name]
        similarities = [float(f.embedding.vector @ alone.embedding.vector) for f in faces]
        assert int(np.argmax(similarities)) == row.face_index
        assert float(vector @ alone.embedding.vector) == pytest.approx(max(similarities), abs=1e-4)
    logged = [details(r) for r in audit_rows(dd, "enrol")]
    assert sorted(d["provenance"]["face_choice"]["rule"] for d in logged) == ["centre", "largest"]


def test_turned_down_images_are_listed_until_they_are_enrolled(
    dd: DataDir, tmp_path: Path, lfw_images: Path, analyzer: CachingAnalyzer
) -> None:
    folder = tmp_path / "batch"
    (folder / "S-1").mkdir(parents=True)
    pair = Image.new("RGB", (500, 250))
    pair.paste(Image.open(lfw_images / "Al_Gore" / "Al_Gore_0002.jpg"), (0, 0))
    pair.paste(Image.open(lfw_images / "Ai_Sugiyama" / "Ai_Sugiyama_0001.jpg"), (250, 0))
    pair.save(folder / "S-1" / "pair.jpg")
    Image.new("RGB", (250, 250), (128, 128, 128)).save(folder / "S-1" / "grey.png")
    shutil.copy(lfw_images / "Al_Gore" / "Al_Gore_0001.jpg", folder / "S-1" / "good.jpg")
    gallery = galleries.get_gallery(dd, "custody")

    first = enrol_folder(dd, "custody", folder, _options(), pipeline=analyzer)
    assert [Path(e.source).name for e in first.enrolled] == ["good.jpg"]
    with dd.store.read() as conn:
        listed = repository.turned_down_images(conn, gallery.id or 0)
    assert {Path(r.source).name: r.reason for r in listed} == {
        "pair.jpg": "several_faces",
        "grey.png": "no_face",
    }
    assert all(r.subject_id == "S-1" and r.run_id == first.run_id for r in listed)
    assert "none clearly the subject's" in next(r.detail for r in listed if r.reason == "several_faces")

    # The administrator crops the pair to its subject's half, in place, and runs the folder again.
    Image.open(folder / "S-1" / "pair.jpg").crop((0, 0, 250, 250)).save(folder / "S-1" / "pair.jpg")
    second = enrol_folder(dd, "custody", folder, _options(), pipeline=analyzer)
    assert [Path(e.source).name for e in second.enrolled] == ["pair.jpg"]
    with dd.store.read() as conn:
        again = repository.turned_down_images(conn, gallery.id or 0, leave_out=["already_enrolled"])
    # good.jpg's rerun is "already enrolled" (left out); the grey image stays, from the later run.
    assert [(Path(r.source).name, r.reason, r.run_id) for r in again] == [
        ("grey.png", "no_face", second.run_id)
    ]


class CountingEmbedder:
    """The real embedder, counting the chips it is asked to embed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model = inner.model
        self.flip = inner.flip
        self.chips = 0

    def embed(self, chips: Sequence[Any]) -> Any:
        self.chips += len(chips)
        return self.inner.embed(chips)

    def embed_with_mirrors(self, chips: Sequence[Any], mirrored: Sequence[Any] | None) -> Any:
        self.chips += len(chips)
        return self.inner.embed_with_mirrors(chips, mirrored)


def test_an_image_turned_down_on_its_faces_costs_no_embedding(
    dd: DataDir, tmp_path: Path, lfw_images: Path
) -> None:
    folder = tmp_path / "few"
    (folder / "S-1").mkdir(parents=True)
    shutil.copy(lfw_images / "Al_Gore" / "Al_Gore_0001.jpg", folder / "S-1" / "one.jpg")
    pair = Image.new("RGB", (500, 250))
    pair.paste(Image.open(lfw_images / "Al_Gore" / "Al_Gore_0002.jpg"), (0, 0))
    pair.paste(Image.open(lfw_images / "Ai_Sugiyama" / "Ai_Sugiyama_0001.jpg"), (250, 0))
    pair.save(folder / "S-1" / "pair.jpg")
    Image.new("RGB", (250, 250), (128, 128, 128)).save(folder / "S-1" / "grey.png")
    with Pipeline.from_settings(Settings(), parallel_flip=False) as real:
        counting = CountingEmbedder(real.embedder)
        pipeline = Pipeline(
            detector=real.detector,
            landmarker=real.landmarker,
            aligner=real.aligner,
            embedder=counting,
            detector_settings=real.detector_settings,
        )
        result = enrol_folder(dd, "custody", folder, _options(), pipeline=pipeline)
        assert [Path(e.source).name for e in result.enrolled] == ["one.jpg"]
        assert _reasons(result) == {"pair.jpg": SkipReason.SEVERAL_FACES, "grey.png": SkipReason.NO_FACE}
        assert counting.chips == 1  # the pair's two faces were never embedded

        shutil.copy(lfw_images / "Ai_Sugiyama" / "Ai_Sugiyama_0002.jpg", folder / "S-1" / "two.jpg")
        strict = enrol_folder(dd, "custody", folder, _options(quality_floor=100.5), pipeline=pipeline)
        assert _reasons(strict)["two.jpg"] == SkipReason.LOW_QUALITY
        assert "below the floor 100.5" in {Path(s.source).name: s.detail for s in strict.skipped}["two.jpg"]
        assert counting.chips == 1


def test_faces_below_the_quality_floor_are_skipped(
    dd: DataDir, photos: Path, analyzer: CachingAnalyzer
) -> None:
    result = enrol_folder(dd, "custody", photos, _options(quality_floor=100.5), pipeline=analyzer)

    assert result.enrolled == ()
    assert set(_reasons(result).values()) <= {
        SkipReason.LOW_QUALITY,
        SkipReason.NO_FACE,
        SkipReason.SEVERAL_FACES,
    }
    below = [s.detail for s in result.skipped if "below the floor 100.5" in s.detail]
    assert below
    # The reason says which aspect lowered the score (or that none did), not only the number.
    assert all(": lowered most by " in d or ": no aspect lowered it" in d for d in below)
    assert _face_ids(dd) == []
    assert list(dd.images.hashes()) == []


def test_missing_required_provenance_is_refused_before_any_work(dd: DataDir, photos: Path) -> None:
    with pytest.raises(ProvenanceError, match="requires collected_on"):
        enrol_folder(dd, "custody", photos, EnrolOptions(enrolled_by="me"))
    with pytest.raises(ProvenanceError, match="enrolled_by"):
        enrol_folder(dd, "custody", photos, EnrolOptions(enrolled_by=" ", collected_on=COLLECTED))
    with dd.store.read() as conn:
        assert conn.execute(select(t.enrolment_runs)).all() == []


# --- CSV manifest ----------------------------------------------------------------------


def _write_manifest(path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_manifest_enrols_rows_with_their_provenance_and_reports_bad_rows(
    dd: DataDir, photos: Path, analyzer: CachingAnalyzer
) -> None:
    galleries.create_gallery(
        dd,
        "records",
        legal_basis="s.1",
        source_description="system of record export",
        retention_days=30,
        required_provenance=("source", "collected_on", "record_id"),
    )
    good = sorted(p for p in photos.rglob("*.jpg") if analyzer.expected(p) is None)
    columns = ["subject_id", "path", "source", "record_id", "collected_on", "enrolled_by", "retention_until"]
    rows = [
        {"subject_id": "P-1", "path": str(good[0].relative_to(photos)), "source": "PNC", "record_id": "R1",
         "collected_on": "2023-12-24", "enrolled_by": "DS Jones", "retention_until": ""},
        {"subject_id": "P-2", "path": str(good[1]), "record_id": "R2", "collected_on": "2023-01-01",
         "retention_until": "2030-01-01"},
        {"subject_id": "P-3", "path": str(good[2].relative_to(photos)), "collected_on": "2023-01-01"},
        {"subject_id": "P-4", "path": "nowhere.jpg", "record_id": "R4", "collected_on": "2023-01-01"},
        {"subject_id": "", "path": str(good[3]), "record_id": "R5", "collected_on": "2023-01-01"},
        {"subject_id": "P-6", "path": str(good[3]), "record_id": "R6", "collected_on": "01/02/2023"},
    ]  # fmt: skip
    manifest = _write_manifest(photos / "manifest.csv", rows, columns)

    result = enrol_manifest(dd, "records", manifest, _options(collected_on=None), pipeline=analyzer)

    assert sorted(e.subject_id for e in result.enrolled) == ["P-1", "P-2"]
    by_subject = {s.subject_id: s for s in result.skipped}
    assert by_subject["P-3"].reason == SkipReason.MISSING_PROVENANCE
    assert "record_id" in by_subject["P-3"].detail
    assert by_subject["P-4"].reason == SkipReason.UNREADABLE
    assert by_subject["P-6"].reason == SkipReason.BAD_ROW
    assert "YYYY-MM-DD" in by_subject["P-6"].detail
    assert f"{manifest}:7" in by_subject["P-6"].source
    assert any(s.reason == SkipReason.BAD_ROW and "empty" in s.detail for s in result.skipped)
    with dd.store.read() as conn:
        gallery = repository.get_gallery(conn, "records")
        first = repository.find_image(conn, gallery.id or 0, result.enrolled[0].sha256)
        second = repository.find_image(conn, gallery.id or 0, result.enrolled[1].sha256)
    assert first is not None
    assert second is not None
    assert first.provenance.source == "PNC"
    assert first.provenance.record_id == "R1"
    assert first.provenance.enrolled_by == "DS Jones"
    assert first.provenance.retention_until == date(2024, 1, 23)  # collected + 30 days
    assert second.provenance.source == str(good[1].resolve())
    assert second.provenance.enrolled_by == "DC 1234 Smith"
    assert second.provenance.retention_until == date(2030, 1, 1)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("subject_id,file\n", "missing column\\(s\\) path; unknown column\\(s\\) file"),
        ("path\n", "subject_id"),
    ],
)
def test_a_manifest_with_a_wrong_header_is_refused(tmp_path: Path, header: str, message: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(header + "x,y\n")
    with pytest.raises(ValidationError, match=message):
        read_manifest(manifest)


def test_a_manifest_that_is_not_text_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValidationError, match="not UTF-8"):
        read_manifest(manifest)
    with pytest.raises(ValidationError, match="does not exist"):
        read_manifest(tmp_path / "none.csv")


# --- one image -------------------------------------------------------------------------


def test_enrol_image_returns_the_record_or_raises_why_not(
    dd: DataDir, photos: Path, analyzer: CachingAnalyzer, tmp_path: Path
) -> None:
    photo = next(p for p in sorted(photos.rglob("*.jpg")) if analyzer.expected(p) is None)
    enrolled = enrol_image(dd, "custody", "S-9", photo, _options(), pipeline=analyzer)
    assert enrolled.subject_id == "S-9"
    assert _face_ids(dd) == [enrolled.face_id]

    with pytest.raises(ConflictError, match="already enrolled"):
        enrol_image(dd, "custody", "S-9", photo, _options(), pipeline=analyzer)
    grey = tmp_path / "grey.png"
    Image.new("RGB", (300, 300), (90, 90, 90)).save(grey)
    with pytest.raises(NoFaceError, match="no face"):
        enrol_image(dd, "custody", "S-9", grey, _options(), pipeline=analyzer)
    with pytest.raises(ProvenanceError, match="collected_on"):
        enrol_image(dd, "custody", "S-9", photo, EnrolOptions(enrolled_by="me"), pipeline=analyzer)


# --- interruption ----------------------------------------------------------------------


def test_ctrl_c_keeps_what_was_committed_and_a_rerun_finishes(
    dd: DataDir, photos: Path, analyzer: CachingAnalyzer
) -> None:
    def stop_after_two(progress: Progress) -> None:
        if progress.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(EnrolmentInterrupted) as caught:
        enrol_folder(dd, "custody", photos, _options(), pipeline=analyzer, progress=stop_after_two)

    partial = caught.value.result
    assert partial.interrupted
    assert isinstance(caught.value, KeyboardInterrupt)
    assert 1 <= len(partial.enrolled) + len(partial.skipped) == 2
    assert (
        _saved_index_ids(dd, analyzer.model) == _face_ids(dd) == sorted(e.face_id for e in partial.enrolled)
    )
    with dd.store.read() as conn:
        assert repository.run_status(conn, partial.run_id) == repository.RUN_INTERRUPTED

    rest = enrol_folder(dd, "custody", photos, _options(), pipeline=analyzer)

    expected = sum(analyzer.expected(p) is None for p in photos.rglob("*.jpg"))
    assert len(partial.enrolled) + len(rest.enrolled) == expected
    assert galleries.gallery_info(dd, "custody").counts.faces == expected
    assert _saved_index_ids(dd, analyzer.model) == _face_ids(dd)


# --- worker processes ------------------------------------------------------------------


@pytest.mark.slow
def test_worker_processes_give_the_same_result_as_one_process(
    dd: DataDir, photos: Path, analyzer: CachingAnalyzer
) -> None:
    result = enrol_folder(dd, "custody", photos, _options(workers=2))

    expected = {p.name: analyzer.expected(p) for p in photos.rglob("*.jpg")}
    assert sorted(Path(e.source).name for e in result.enrolled) == sorted(
        n for n, r in expected.items() if r is None
    )
    assert _saved_index_ids(dd, analyzer.model) == _face_ids(dd)
    with dd.store.read() as conn:
        for enrolled in result.enrolled:
            blob = conn.execute(
                select(t.faces.c.embedding).where(t.faces.c.id == enrolled.face_id)
            ).scalar_one()
            reference = analyzer.analyze(load_image(enrolled.source)).faces[0].embedding.vector
            np.testing.assert_allclose(repository.decode_embedding(blob), reference, atol=1e-5)


@pytest.mark.parametrize(
    ("option", "setting", "items", "expected"),
    [
        (None, 0, 10_000, os.cpu_count() or 1),  # automatic: one per core
        (None, 0, SMALL_BATCH - 1, 1),  # automatic, small batch: no process start-up to pay
        (None, 3, 5, 3),  # configured
        (2, 0, 5, 2),  # asked for
        (4, 0, 2, 2),  # never more workers than images
        (0, 0, 0, 1),
    ],
)
def test_worker_count(option: int | None, setting: int, items: int, expected: int) -> None:
    assert (
        worker_count(EnrolOptions(enrolled_by="me", workers=option), Settings(workers=setting), items)
        == expected
    )


# --- a long-running process (the HTTP service) and a second one (the CLI) ---------------------


def test_a_long_running_reader_sees_enrolments_and_purges_made_by_another_process(
    dd: DataDir, photos: Path, analyzer: CachingAnalyzer
) -> None:
    first_person, second_person = PEOPLE[0], PEOPLE[1]
    enrol_image(
        dd,
        "custody",
        first_person,
        next((photos / first_person).glob("*.jpg")),
        _options(),
        pipeline=analyzer,
    )
    with open_data_dir(dd.path) as service:  # like `faceledger serve`, holding the index in memory
        gallery = galleries.get_gallery(service, "custody")
        assert len(service.index(gallery, analyzer.model)) == 1
        # The CLI, another process, enrols a second person and then purges the first.
        second = enrol_image(
            dd, "custody", second_person, next((photos / second_person).glob("*.jpg")), _options(),
            pipeline=analyzer,
        )  # fmt: skip
        assert sorted(service.index(gallery, analyzer.model).ids().tolist()) == _face_ids(dd)
        assert second.face_id in _face_ids(dd)
        galleries.purge_subject(
            dd, "custody", second_person, reason="court_order", authority="Order 2026-123"
        )
        assert sorted(service.index(gallery, analyzer.model).ids().tolist()) == _face_ids(dd)
        assert len(_face_ids(dd)) == 1
        assert second.face_id not in service.index(gallery, analyzer.model).ids().tolist()
