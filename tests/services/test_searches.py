"""Accountable search on real photos: decided before the probe is touched, recorded in one transaction."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from cases_helpers import (
    CASE,
    CUSTODY,
    PAROLE,
    PURPOSE,
    T0,
    CachingAnalyzer,
    analyzer,
    audit_rows,
    backend_url,
    create_galleries,
    dd,
    enrol_people,
    load,
    person,
    photo,
    policy_text,
)
from PIL import Image
from sqlalchemy import func, select

from faceledger.adapters.store.tables_cases import (
    candidate_views,
    cases,
    policy_decisions,
    probe_edits,
    probes,
    search_candidates,
    searches,
)
from faceledger.domain import normalisation
from faceledger.domain.roles import Role
from faceledger.errors import NoFaceError, NotFoundError, PermissionDeniedError, StoreError
from faceledger.pipeline.edit import Brightness, Crop, pixels_sha256
from faceledger.pipeline.ingest import load_image
from faceledger.services import probes as probe_service
from faceledger.services.datadir import DataDir
from faceledger.services.policies import from_db
from faceledger.services.search_records import load_search, load_verification
from faceledger.services.searches import (
    SearchInput,
    VerifyInput,
    accountable_search,
    accountable_verify,
    get_search,
    view_candidate,
)

__all__ = ["analyzer", "backend_url", "dd"]  # fixtures

pytestmark = pytest.mark.faces

EXAMINER = person("eve.examiner", Role.EXAMINER)
REQUEST = SearchInput(CASE, PURPOSE, (CUSTODY,), justification="robbery at the post office")


@pytest.fixture
def governed(dd: DataDir) -> DataDir:
    """Two empty galleries and the example policy in force."""
    create_galleries(dd)
    load(dd)
    return dd


@pytest.fixture
def ready(governed: DataDir, analyzer: CachingAnalyzer, lfw_images: Path) -> DataDir:
    """As ``governed``, with three people enrolled in the custody gallery."""
    enrol_people(governed, analyzer, lfw_images)
    return governed


def _probe(lfw_images: Path, name: str = "Colin_Powell", number: int = 2) -> probe_service.Probe:
    return probe_service.Probe.from_path(photo(lfw_images, name, number))


def _count(dd: DataDir, table: object) -> int:
    with dd.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_an_allowed_search_is_stored_with_everything_that_explains_it(
    ready: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    probe = _probe(lfw_images)
    record = accountable_search(ready, analyzer, EXAMINER, probe, REQUEST, now=T0)

    assert record.candidates[0].subject_id == "Colin_Powell"
    assert record.candidates[0].above_threshold
    assert sorted(c.subject_id for c in record.candidates) == ["Colin_Powell", "Jean_Chretien", "Tony_Blair"]
    assert (record.case_number, record.purpose, record.username, record.device_id) == (
        CASE,
        PURPOSE,
        "eve.examiner",
        "ws-01",
    )
    assert record.justification == "robbery at the post office"
    assert record.policy_version == "example-2025.1"
    assert record.rule_ids == ("search.allowed_pending_quality", "probe.quality_ok")
    assert record.probe_sha256 == probe.sha256 == record.searched_sha256
    assert record.edits == ()
    assert record.galleries == (CUSTODY,)
    assert record.model_key == analyzer.model.key
    assert record.review_state == "awaiting_examination"
    assert record.probe_retain_until == T0 + timedelta(days=30)
    assert "investigative lead only" in record.lead_notice
    assert record.result is not None
    assert record.result.faces[0].subjects == record.candidates
    assert {"decode", "analyse", "search"} <= set(record.timings_ms)
    # The dlib model has every template size's calibration, so subjects are scored by templates.
    assert record.score_normalisation is record.result.score_normalisation is normalisation.MEAN_TEMPLATE
    assert record.to_dict()["score_normalisation"] == "mean-template"
    assert all(c.template_images == 1 for c in record.candidates)  # one photo enrolled per person

    assert probe_service.probe_store(ready).read(probe.sha256) == probe.data
    with ready.store.read() as conn:
        assert conn.execute(select(cases.c.case_number, cases.c.opened_by)).one() == (CASE, "eve.examiner")
        assert conn.execute(select(probes.c.sha256, probes.c.width)).one() == (probe.sha256, 250)
        shown = conn.execute(
            select(search_candidates.c.subject_id).order_by(search_candidates.c.rank)
        ).scalars()
        assert list(shown) == [c.subject_id for c in record.candidates]
        rules = conn.execute(
            select(policy_decisions.c.rule_id).where(policy_decisions.c.search_id == 1)
        ).scalars()
        assert sorted(rules) == ["probe.quality_ok", "search.allowed_pending_quality"]
        assert conn.execute(select(searches.c.score_normalisation)).scalar_one() == "mean-template"

    [search_entry] = audit_rows(ready, "search")
    assert search_entry["object"] == f"search:{record.search_id}"
    details = search_entry["details"]
    assert (details["case_ref"], details["purpose"], details["probe_sha256"]) == (CASE, PURPOSE, probe.sha256)
    assert (details["policy_version"], details["device_id"]) == ("example-2025.1", "ws-01")
    assert details["rule_ids"] == list(record.rule_ids)
    assert details["galleries"] == [CUSTODY]
    assert details["score_normalisation"] == "mean-template"  # the exported log says how scores were made
    [shown_entry] = audit_rows(ready, "candidates_shown")
    assert [c["subject_id"] for c in shown_entry["details"]["candidates"]] == [
        c.subject_id for c in record.candidates
    ]
    assert shown_entry["seq"] == search_entry["seq"] + 1


def test_a_stored_search_reads_back_the_same_and_showing_it_is_recorded(
    ready: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    made = accountable_search(ready, analyzer, EXAMINER, _probe(lfw_images), REQUEST, now=T0)
    reviewer = person("rita.reviewer", Role.REVIEWER, device=None)
    again = get_search(ready, reviewer, made.search_id, now=T0 + timedelta(minutes=1))
    assert again.to_dict() == made.to_dict()
    assert again.result is None
    assert [e["actor"] for e in audit_rows(ready, "candidates_shown")] == ["eve.examiner", "rita.reviewer"]
    with pytest.raises(NotFoundError, match="no search 99"):
        get_search(ready, reviewer, 99, now=T0)


def test_a_record_scored_under_a_normalisation_this_version_does_not_know_is_not_shown(
    ready: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    first, second = _probe(lfw_images, "Tony_Blair", 1), _probe(lfw_images, "Tony_Blair", 2)
    made = accountable_search(ready, analyzer, EXAMINER, first, REQUEST, now=T0)
    compared = accountable_verify(
        ready, analyzer, EXAMINER, first, second, VerifyInput(CASE, PURPOSE), now=T0
    )
    with ready.store.begin() as conn:  # as a newer version would have written them
        conn.execute(searches.update().values(score_normalisation="cohort-tnorm"))
    with ready.store.read() as conn:
        with pytest.raises(StoreError, match=f"record {made.search_id} .*'cohort-tnorm'"):
            load_search(conn, made.search_id)
        with pytest.raises(StoreError, match=f"record {compared.search_id} .*'cohort-tnorm'"):
            load_verification(conn, compared.search_id)


class NoTouch:
    """An analyzer that fails the test if a probe reaches it."""

    model = property(lambda self: pytest.fail("the model was consulted"))

    def analyze(self, image: object) -> object:
        pytest.fail("a refused probe was analysed")


REFUSALS = [
    ("no case number", {"request": replace(REQUEST, case_number=None)}, "case.missing"),
    ("bad case format", {"request": replace(REQUEST, case_number="CID-4211")}, "case.malformed"),
    ("no purpose", {"request": replace(REQUEST, purpose="")}, "purpose.missing"),
    (
        "prohibited purpose",
        {"request": replace(REQUEST, purpose="civil_immigration_enforcement")},
        "purpose.prohibited",
    ),
    (
        "gallery not for the purpose",
        {"request": replace(REQUEST, purpose="deceased_or_incapacitated", galleries=(PAROLE,))},
        "gallery.not_for_purpose",
    ),
    ("expired account", {"who": person("tom.trial", Role.EXAMINER, expires_at=T0)}, "account.expired"),
    (
        "unregistered device",
        {"who": person("eve.examiner", Role.EXAMINER, device=None)},
        "device.unregistered",
    ),
    ("no second factor", {"who": person("eve.examiner", Role.EXAMINER, mfa=False)}, "mfa.required"),
    ("auditor", {"who": person("ann.auditor", Role.AUDITOR)}, "role.not_permitted"),
    (
        "justification required",
        {"request": replace(REQUEST, purpose="missing_person_at_risk", justification=None)},
        "justification.missing",
    ),
]


@pytest.mark.parametrize(("label", "change", "rule"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_searches_are_recorded_and_the_probe_is_never_touched(
    governed: DataDir, label: str, change: dict[str, object], rule: str
) -> None:
    who = change.get("who", EXAMINER)
    request = change.get("request", REQUEST)
    probe = probe_service.Probe(b"not even an image", "probe.jpg")  # decoding it would fail
    with pytest.raises(PermissionDeniedError) as refused:
        accountable_search(governed, NoTouch(), who, probe, request, now=T0)  # type: ignore[arg-type]
    decision = refused.value.decision
    assert decision is not None
    assert (decision.allowed, decision.rule_id, decision.policy_version) == (False, rule, "example-2025.1")
    assert decision.reason in str(refused.value)

    [denied] = audit_rows(governed, "policy_denied")
    assert denied["actor"] == who.actor.username  # type: ignore[attr-defined]
    assert denied["details"]["attempted"] == "search"
    assert denied["details"]["decision"] == decision.to_dict()
    with governed.store.read() as conn:
        stored = conn.execute(select(policy_decisions).where(policy_decisions.c.action == "search")).one()
    assert (stored.rule_id, stored.allowed, stored.search_id) == (rule, False, None)
    assert stored.case_number == request.case_number  # type: ignore[attr-defined]
    assert _count(governed, searches) == _count(governed, probes) == _count(governed, cases) == 0
    assert list(probe_service.probe_store(governed).hashes()) == []


def test_without_a_policy_every_search_is_refused(dd: DataDir, lfw_images: Path) -> None:
    create_galleries(dd)
    with pytest.raises(PermissionDeniedError, match="no policy is in force") as refused:
        accountable_search(dd, NoTouch(), EXAMINER, _probe(lfw_images), REQUEST, now=T0)  # type: ignore[arg-type]
    assert refused.value.decision is not None
    assert refused.value.decision.rule_id == "policy.none"
    [denied] = audit_rows(dd, "policy_denied")
    assert denied["details"]["decision"]["rule_id"] == "policy.none"


def test_the_daily_limit_counts_the_policy_day(
    ready: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    load(ready, policy_text(version='"limit-1"', daily_limit_per_user="1"), at=T0)
    probe = _probe(lfw_images)
    accountable_search(ready, analyzer, EXAMINER, probe, REQUEST, now=T0)
    with pytest.raises(PermissionDeniedError) as refused:
        accountable_search(ready, analyzer, EXAMINER, probe, REQUEST, now=T0 + timedelta(hours=13))
    assert refused.value.decision is not None
    assert refused.value.decision.rule_id == "limit.daily"
    assert "made 1 searches today; the limit is 1" in str(refused.value)
    # Another examiner has their own count; the next London day starts at 23:00 UTC in summer.
    accountable_search(ready, analyzer, person("ed.examiner", Role.EXAMINER), probe, REQUEST, now=T0)
    accountable_search(ready, analyzer, EXAMINER, probe, REQUEST, now=T0 + timedelta(hours=14))
    assert _count(ready, searches) == 3
    assert _count(ready, probes) == 1  # the same photo is kept once
    assert [e["details"]["decision"]["rule_id"] for e in audit_rows(ready, "policy_denied")] == [
        "limit.daily"
    ]


def test_a_probe_below_the_quality_floor_is_refused_after_analysis_and_not_kept(
    ready: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    load(ready, policy_text(version='"strict"', probe_quality_floor="99.5"), at=T0)
    with pytest.raises(PermissionDeniedError) as refused:
        accountable_search(ready, analyzer, EXAMINER, _probe(lfw_images), REQUEST, now=T0)
    assert refused.value.decision is not None
    assert refused.value.decision.rule_id == "probe.quality_below_floor"
    assert "below the policy's floor of 99.5" in str(refused.value)
    assert [e["details"]["decision"]["rule_id"] for e in audit_rows(ready, "policy_denied")] == [
        "probe.quality_below_floor"
    ]
    assert _count(ready, searches) == _count(ready, probes) == 0
    assert list(probe_service.probe_store(ready).hashes()) == []


def test_a_probe_without_a_face_stores_nothing(ready: DataDir, analyzer: CachingAnalyzer) -> None:
    grey = io.BytesIO()
    Image.fromarray(np.full((200, 200, 3), 128, dtype=np.uint8)).save(grey, format="PNG")
    with pytest.raises(NoFaceError, match="no face found"):
        accountable_search(
            ready, analyzer, EXAMINER, probe_service.Probe(grey.getvalue(), "wall.png"), REQUEST, now=T0
        )
    assert _count(ready, searches) == 0
    assert audit_rows(ready, "search") == []


def test_edits_are_recorded_and_the_searched_image_is_re_derived_from_the_original(
    ready: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    probe = _probe(lfw_images)
    edits = (Crop(40, 30, 210, 220), Brightness(1.3))
    record = accountable_search(ready, analyzer, EXAMINER, probe, replace(REQUEST, edits=edits), now=T0)
    assert record.candidates[0].subject_id == "Colin_Powell"
    assert [s.edit for s in record.edits] == list(edits)
    assert record.probe_sha256 == probe.sha256
    original = load_image(photo(lfw_images, "Colin_Powell", 2)).pixels
    expected = np.clip(np.rint(original[30:220, 40:210].astype(np.float64) * 1.3), 0, 255).astype(np.uint8)
    assert record.searched_sha256 == pixels_sha256(expected) != probe.sha256

    images = probe_service.probe_images(ready, record)
    assert images.original.sha256 == probe.sha256
    np.testing.assert_array_equal(images.searched.pixels, expected)
    with ready.store.read() as conn:
        rows = conn.execute(select(probe_edits).order_by(probe_edits.c.seq)).all()
    assert [(r.kind, r.params, r.width, r.height) for r in rows] == [
        ("crop", {"left": 40, "top": 30, "right": 210, "bottom": 220}, 170, 190),
        ("brightness", {"factor": 1.3}, 170, 190),
    ]
    [entry] = audit_rows(ready, "search")
    assert entry["details"]["searched_sha256"] == record.searched_sha256
    assert [e["params"] for e in entry["details"]["probe_edits"]] == [
        {"left": 40, "top": 30, "right": 210, "bottom": 220},
        {"factor": "1.300000"},
    ]


def test_opening_a_candidate_is_recorded(ready: DataDir, analyzer: CachingAnalyzer, lfw_images: Path) -> None:
    record = accountable_search(ready, analyzer, EXAMINER, _probe(lfw_images), REQUEST, now=T0)
    top = record.candidates[0]
    view = view_candidate(ready, EXAMINER, record.search_id, top.face_id, now=T0 + timedelta(minutes=2))
    assert view.face is not None
    assert (view.face.subject_id, view.face.gallery) == ("Colin_Powell", CUSTODY)
    assert ready.images.exists(view.face.image_sha256)
    [viewed] = audit_rows(ready, "candidate_viewed")
    assert viewed["object"] == f"face:{top.face_id}"
    assert viewed["details"] == {
        "search_id": str(record.search_id),
        "subject_id": "Colin_Powell",
        "face_id": top.face_id,
    }
    assert _count(ready, candidate_views) == 1
    with pytest.raises(NotFoundError, match="is not a candidate of search"):
        view_candidate(ready, EXAMINER, record.search_id, 10_000, now=T0)
    gallery_admin = person("gina.galleries", Role.GALLERY_ADMIN)
    with pytest.raises(PermissionDeniedError, match="view_case"):
        view_candidate(ready, gallery_admin, record.search_id, top.face_id, now=T0)
    assert _count(ready, candidate_views) == 1


def test_one_to_one_verification_is_decided_and_recorded_like_a_search(
    ready: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    first, second = _probe(lfw_images, "Tony_Blair", 1), _probe(lfw_images, "Tony_Blair", 2)
    request = VerifyInput(CASE, PURPOSE)
    record = accountable_verify(ready, analyzer, EXAMINER, first, second, request, now=T0)
    assert record.same_person
    assert record.score >= record.threshold
    assert record.probe_sha256s == (first.sha256, second.sha256)
    assert record.rule_ids == ("verify.allowed", "probe.quality_ok")
    assert record.score_normalisation is normalisation.NONE
    assert record.to_dict()["score_normalisation"] == "none"
    with ready.store.read() as conn:
        assert conn.execute(select(searches.c.score_normalisation)).scalar_one() == "none"
    [entry] = audit_rows(ready, "verify")
    assert entry["details"]["probe_sha256s"] == [first.sha256, second.sha256]
    assert entry["details"]["score_normalisation"] == "none"
    assert entry["details"]["case_ref"] == CASE
    store = probe_service.probe_store(ready)
    assert store.exists(first.sha256)
    assert store.exists(second.sha256)
    other = accountable_verify(
        ready, analyzer, EXAMINER, first, _probe(lfw_images, "Colin_Powell", 1), request, now=T0
    )
    assert not other.same_person

    with pytest.raises(PermissionDeniedError) as refused:
        accountable_verify(ready, NoTouch(), EXAMINER, first, second, VerifyInput(None, PURPOSE), now=T0)  # type: ignore[arg-type]
    assert refused.value.decision is not None
    assert refused.value.decision.rule_id == "case.missing"
    assert audit_rows(ready, "policy_denied")[0]["details"]["attempted"] == "verify"


def test_retention_removes_probe_files_but_keeps_their_hashes(
    ready: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    probe = _probe(lfw_images)
    record = accountable_search(ready, analyzer, EXAMINER, probe, REQUEST, now=T0)
    early = probe_service.purge_expired_probes(ready, now=T0 + timedelta(days=29))
    assert early.purged == ()
    assert probe_service.probe_store(ready).exists(probe.sha256)

    later = probe_service.purge_expired_probes(ready, now=T0 + timedelta(days=31))
    assert later.purged == (probe.sha256,)
    assert later.files_removed == 1
    assert not probe_service.probe_store(ready).exists(probe.sha256)
    with ready.store.read() as conn:
        kept, purged_at = conn.execute(select(probes.c.sha256, probes.c.purged_at)).one()
    assert kept == probe.sha256
    assert from_db(purged_at) == T0 + timedelta(days=31)
    [purge] = audit_rows(ready, "purge")
    assert (purge["actor"], purge["object"], purge["details"]["sha256s"]) == (
        "system",
        "probes",
        [probe.sha256],
    )
    with ready.store.read() as conn:
        stored = load_search(conn, record.search_id)
    assert stored.probe_purged
    assert stored.probe_sha256 == probe.sha256
    with pytest.raises(NotFoundError, match="removed by retention"):
        probe_service.probe_images(ready, stored)
    assert probe_service.purge_expired_probes(ready, now=T0 + timedelta(days=40)).purged == ()


def test_a_probe_file_no_record_names_is_swept_once_old(ready: DataDir) -> None:
    store = probe_service.probe_store(ready)
    sha = store.put(b"left by a search that crashed before committing")
    assert probe_service.purge_expired_probes(ready, now=T0).files_removed == 0  # might be about to commit
    path = store.path_for(sha)
    old = path.stat().st_mtime - 2 * 3600
    os.utime(path, (old, old))
    assert probe_service.purge_expired_probes(ready, now=T0).files_removed == 1
    assert not store.exists(sha)
