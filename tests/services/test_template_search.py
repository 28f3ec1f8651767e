"""A search scores each subject by its mean template, kept in step with enrolment and purge.

Real photos, the real pipeline and the shipped calibration: a person enrolled from several photos
is scored against the unit mean of (up to four of) their stored vectors and read on the
calibration of that template size, so enrolling another photo or purging the person changes
the next search at once, with nothing else to rebuild.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from cases_helpers import CUSTODY, CachingAnalyzer, analyzer, backend_url, create_galleries, dd, photo
from sqlalchemy import select, update

from faceledger.adapters.store import repository
from faceledger.adapters.store.tables import faces, subjects
from faceledger.domain.calibration import template_calibrations
from faceledger.domain.models import SearchResult
from faceledger.domain.normalisation import MEAN_TEMPLATE
from faceledger.domain.templates import MAX_TEMPLATE_IMAGES, unit_mean
from faceledger.pipeline.ingest import load_image
from faceledger.pipeline.search import Hit, SubjectScore
from faceledger.services import galleries, identification
from faceledger.services.datadir import DataDir
from faceledger.services.enrolment import EnrolOptions, enrol_image

__all__ = ["analyzer", "backend_url", "dd"]  # fixtures

pytestmark = pytest.mark.faces

OPTIONS = EnrolOptions(enrolled_by="gina.galleries", collected_on=date(2024, 5, 1), workers=1)
BLAIR = "Tony_Blair"


def _enrol(dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path, name: str, *numbers: int) -> None:
    for number in numbers:
        enrol_image(dd, CUSTODY, name, photo(lfw_images, name, number), OPTIONS, pipeline=analyzer)


def _search(dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path) -> SearchResult:
    probe = load_image(photo(lfw_images, BLAIR, 10))
    return identification.search(dd, analyzer, probe, [CUSTODY], top_k=5)


def _stored_template(dd: DataDir, analyzer: CachingAnalyzer) -> tuple[list[int], npt.NDArray[np.float32]]:
    """The ids and stored vectors of every face of Tony Blair."""
    with dd.store.read() as conn:
        ids = list(
            conn.execute(
                select(faces.c.id)
                .join(subjects, subjects.c.id == faces.c.subject_id)
                .where(subjects.c.external_id == BLAIR)
            ).scalars()
        )
        _, vectors = repository.face_vectors(conn, ids, analyzer.model.dim)
    return ids, vectors


def test_a_subject_enrolled_from_several_photos_is_scored_by_its_mean_template(
    dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    create_galleries(dd)
    _enrol(dd, analyzer, lfw_images, "Colin_Powell", 1)
    _enrol(dd, analyzer, lfw_images, "Jean_Chretien", 1)
    _enrol(dd, analyzer, lfw_images, BLAIR, 1, 2, 3)
    result = _search(dd, analyzer, lfw_images)
    assert result.score_normalisation is MEAN_TEMPLATE
    face = result.faces[0]
    top = face.subjects[0]
    assert (top.subject_id, top.template_images) == (BLAIR, 3)
    # The score is the probe against the unit mean of the three stored vectors ...
    ids, vectors = _stored_template(dd, analyzer)
    assert len(ids) == 3
    expected = float(np.dot(unit_mean(vectors), face.probe.embedding.vector))
    assert top.score == pytest.approx(expected, abs=1e-5)
    # ... read on the calibration of templates of three, whose threshold is higher than one image's.
    tables = template_calibrations(
        analyzer.model.key, flip=dd.settings.embedder.flip, up_to=MAX_TEMPLATE_IMAGES
    )
    assert tables is not None
    assert top.estimated_fmr == pytest.approx(tables[3].estimated_fmr(top.score))
    assert top.face_id in ids  # shown by one of the person's own photos
    others = {c.subject_id: c.template_images for c in face.subjects[1:]}
    assert others == {"Colin_Powell": 1, "Jean_Chretien": 1}
    # The per-face list keeps single-image scores.
    assert {c.template_images for c in face.candidates} == {1}
    assert max(c.score for c in face.candidates if c.subject_id == BLAIR) != pytest.approx(top.score)


def test_enrolment_and_purge_change_the_template_of_the_next_search(
    dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    create_galleries(dd)
    _enrol(dd, analyzer, lfw_images, "Colin_Powell", 1)
    _enrol(dd, analyzer, lfw_images, BLAIR, 1)
    first = _search(dd, analyzer, lfw_images).faces[0].subjects[0]
    assert (first.subject_id, first.template_images) == (BLAIR, 1)
    _enrol(dd, analyzer, lfw_images, BLAIR, 2, 3, 4, 5, 6)
    after = _search(dd, analyzer, lfw_images).faces[0].subjects[0]
    assert (after.subject_id, after.template_images) == (BLAIR, MAX_TEMPLATE_IMAGES)  # at most four
    galleries.purge_subject(dd, CUSTODY, BLAIR, reason="court_order", authority="order 2026-17")
    gone = _search(dd, analyzer, lfw_images).faces[0]
    assert [c.subject_id for c in gone.subjects] == ["Colin_Powell"]
    assert all(c.subject_id != BLAIR for c in gone.candidates)


def test_a_subject_whose_faces_are_gone_has_no_template_and_opposite_vectors_fall_back_to_one_image(
    dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    create_galleries(dd)
    _enrol(dd, analyzer, lfw_images, BLAIR, 1, 2)
    ids, vectors = _stored_template(dd, analyzer)
    probe = vectors[0]
    ghost = Hit(face_id=999_999, subject_id="ghost", gallery=CUSTODY, score=0.95)  # purged meanwhile
    assert identification._template_scores(dd, [ghost], probe, analyzer.model) == {}
    # Two faces whose vectors cancel have no mean direction: the best hit's own score stands.
    with dd.store.begin() as conn:
        conn.execute(
            update(faces)
            .where(faces.c.id == ids[1])
            .values(embedding=repository.encode_embedding(-vectors[0], analyzer.model.dim))
        )
    hit = Hit(face_id=ids[0], subject_id=BLAIR, gallery=CUSTODY, score=0.97)
    found = identification._template_scores(dd, [hit], probe, analyzer.model)
    assert found == {(CUSTODY, BLAIR): SubjectScore(0.97, 1)}
