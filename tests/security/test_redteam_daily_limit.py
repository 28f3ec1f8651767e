"""Red team: parallel searches must not overrun the policy's daily limit.

The hole: four CLI searches started at once all passed a daily limit that had two searches
left. The policy read today's count in one transaction and the search was written in
another, minutes of image work later, so every searcher counted the same yesterday.

Now the decision, the count and the allowed decision that reserves the search share one
write transaction that serialises searchers (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
advisory lock per person), and a reservation counts from that moment, even when the probe
then turns out to have no usable face.

Each searcher here opens the data directory itself, as a separate CLI process would, and
analysis is slowed so that every searcher is deciding while the others are still busy with
their images: on the old code all of them got through.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cases_helpers import (
    CASE,
    CUSTODY,
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
from sqlalchemy import select

from faceledger.adapters.store.tables_cases import policy_decisions, searches
from faceledger.domain.models import DecodedImage, ImageAnalysis, ModelRef
from faceledger.domain.roles import Role
from faceledger.errors import NoFaceError, PermissionDeniedError
from faceledger.services import probes as probe_service
from faceledger.services.datadir import DataDir, open_data_dir
from faceledger.services.search_records import SearchRecord
from faceledger.services.searches import SearchInput, accountable_search

__all__ = ["analyzer", "backend_url", "dd"]  # fixtures

pytestmark = pytest.mark.faces

EXAMINER = person("eve.examiner", Role.EXAMINER)
REQUEST = SearchInput(CASE, PURPOSE, (CUSTODY,), justification="robbery at the post office")
SEARCHERS = 5
LEFT = 2


class SlowAnalyzer:
    """The real (cached) pipeline, taking a while per probe as a real one does on a big photo."""

    def __init__(self, inner: CachingAnalyzer, delay: float) -> None:
        self._inner = inner
        self._delay = delay
        self._lock = threading.Lock()

    @property
    def model(self) -> ModelRef:
        return self._inner.model

    def analyze(self, image: DecodedImage) -> ImageAnalysis:
        time.sleep(self._delay)
        with self._lock:  # the pipeline is not shared across threads elsewhere either
            return self._inner.analyze(image)


@pytest.fixture
def limited(dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path) -> DataDir:
    """Three people enrolled, a daily limit of 3, and one search made: two left today."""
    create_galleries(dd)
    load(dd, policy_text(version='"limit-3"', daily_limit_per_user="3"))
    enrol_people(dd, analyzer, lfw_images)
    accountable_search(dd, analyzer, EXAMINER, _probe(lfw_images), REQUEST, now=T0)  # warms the cache too
    return dd


def _probe(lfw_images: Path) -> probe_service.Probe:
    return probe_service.Probe.from_path(photo(lfw_images, "Colin_Powell", 2))


def _search_in_parallel(
    dd: DataDir, analyzer: CachingAnalyzer, probe: probe_service.Probe
) -> tuple[list[SearchRecord], list[BaseException]]:
    slow = SlowAnalyzer(analyzer, delay=0.5)
    start = threading.Barrier(SEARCHERS)
    done: list[SearchRecord] = []
    failed: list[BaseException] = []
    guard = threading.Lock()

    def one() -> None:
        own = open_data_dir(dd.path, settings=dd.settings)  # its own engine and connections, like a CLI run
        try:
            start.wait(timeout=30)
            record = accountable_search(own, slow, EXAMINER, probe, REQUEST, now=T0)
        except BaseException as exc:  # every outcome is asserted below
            with guard:
                failed.append(exc)
        else:
            with guard:
                done.append(record)
        finally:
            own.close()

    threads = [threading.Thread(target=one, name=f"searcher-{i}") for i in range(SEARCHERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a searcher hung"
    return done, failed


def test_parallel_searches_cannot_pass_the_daily_limit(
    limited: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    done, failed = _search_in_parallel(limited, analyzer, _probe(lfw_images))

    assert len(done) == LEFT, f"{len(done)} of {SEARCHERS} parallel searches passed a limit with {LEFT} left"
    assert len(failed) == SEARCHERS - LEFT
    for exc in failed:
        assert isinstance(exc, PermissionDeniedError), repr(exc)
        assert exc.decision is not None
        assert exc.decision.rule_id == "limit.daily"
        assert "made 3 searches today; the limit is 3" in str(exc)

    with limited.store.read() as conn:
        made = (
            conn.execute(select(searches.c.id).where(searches.c.username == "eve.examiner")).scalars().all()
        )
        decisions = conn.execute(
            select(
                policy_decisions.c.rule_id, policy_decisions.c.allowed, policy_decisions.c.search_id
            ).where(policy_decisions.c.action == "search")
        ).all()
    assert len(made) == 1 + LEFT
    assert sorted(r.search_id for r in done) == sorted(made[1:])
    denied = [d for d in decisions if not d.allowed]
    assert [d.rule_id for d in denied] == ["limit.daily"] * (SEARCHERS - LEFT)
    assert all(d.search_id is None for d in denied)
    allowed = [d for d in decisions if d.allowed]
    assert sorted(d.rule_id for d in allowed) == sorted(
        ["search.allowed_pending_quality", "probe.quality_ok"] * (1 + LEFT)
    )
    assert all(d.search_id is not None for d in allowed)  # every reservation became its search
    assert [e["details"]["decision"]["rule_id"] for e in audit_rows(limited, "policy_denied")] == [
        "limit.daily"
    ] * (SEARCHERS - LEFT)
    assert len(audit_rows(limited, "search")) == 1 + LEFT


def test_a_search_that_passed_the_policy_counts_even_when_its_probe_has_no_face(
    limited: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    grey = io.BytesIO()
    Image.fromarray(np.full((200, 200, 3), 128, dtype=np.uint8)).save(grey, format="PNG")
    wall = probe_service.Probe(grey.getvalue(), "wall.png")
    accountable_search(limited, analyzer, EXAMINER, _probe(lfw_images), REQUEST, now=T0)  # the 2nd of 3
    with pytest.raises(NoFaceError):
        accountable_search(limited, analyzer, EXAMINER, wall, REQUEST, now=T0)  # the 3rd, spent on a wall
    with pytest.raises(PermissionDeniedError) as refused:
        accountable_search(limited, analyzer, EXAMINER, _probe(lfw_images), REQUEST, now=T0)
    assert refused.value.decision is not None
    assert refused.value.decision.rule_id == "limit.daily"
    assert "made 3 searches today" in str(refused.value)

    with limited.store.read() as conn:
        spent = conn.execute(
            select(policy_decisions.c.rule_id).where(
                policy_decisions.c.action == "search",
                policy_decisions.c.allowed.is_(True),
                policy_decisions.c.search_id.is_(None),
            )
        ).scalars()
        assert list(spent) == ["search.allowed_pending_quality"]  # the reservation the wall used up
    failed = audit_rows(limited, "action_failed")
    assert len(failed) == 1  # the search the examiner never saw is in the log, with why it failed
    assert (failed[0]["actor"], failed[0]["details"]["attempted"]) == (EXAMINER.actor.username, "search")
    assert failed[0]["details"]["code"] == "no_face"
    assert failed[0]["details"]["probe_sha256"] == wall.sha256
    assert failed[0]["details"]["case_ref"] == REQUEST.case_number
