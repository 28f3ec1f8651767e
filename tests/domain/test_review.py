"""The review state machine: only the documented transitions, separation of duties, blindness."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceledger.domain.models import Candidate
from faceledger.domain.review import (
    TERMINAL_STATES,
    TRANSITIONS,
    Approve,
    Command,
    Comparison,
    Event,
    Examine,
    Feature,
    FeatureRow,
    Finding,
    InvalidTransitionError,
    Outcome,
    PeerAssess,
    PeerVerdict,
    RecordVerdict,
    Reject,
    Review,
    ReviewError,
    SeparationOfDutiesError,
    State,
    allowed_events,
    apply,
    approve,
    examine,
    next_state,
    open_review,
    parse_worksheet,
    peer_assess,
    peer_view,
    record_verdict,
    reject,
    replay,
)
from faceledger.errors import ConflictError, ValidationError

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


CANDIDATES = tuple(
    Candidate(
        rank=i + 1,
        subject_id=f"S{i}",
        face_id=100 + i,
        gallery="custody",
        score=0.9 - i / 10,
        estimated_fmr=None,
        above_threshold=i == 0,
    )
    for i in range(3)
)


def fresh() -> Review:
    return open_review("search-1", "2025/CID/000123", "alice", CANDIDATES, at=T0)


def findings(match: int | None = 100, notes: str = "ear shape, scar above left eyebrow") -> list[Finding]:
    return [
        Finding(c.face_id, Outcome.POSSIBLE_MATCH, notes)
        if c.face_id == match
        else Finding(c.face_id, Outcome.NO_MATCH)
        for c in CANDIDATES
    ]


def proposed() -> Review:
    return examine(fresh(), "alice", findings(), at=at(1))


def assessed(match: int | None = 100) -> Review:
    return peer_assess(proposed(), "bob", findings(match), at=at(2))


def agreed() -> Review:
    return record_verdict(assessed(), "bob", PeerVerdict.AGREE, at=at(3))


def disputed() -> Review:
    return record_verdict(assessed(101), "bob", PeerVerdict.DISAGREE, "candidate 2 fits better", at=at(3))


# --- the happy paths -------------------------------------------------------------------


def test_full_path_to_approval_records_every_step() -> None:
    review = approve(agreed(), "carol", "lead may be disseminated", at=at(4))
    assert review.state is State.APPROVED
    assert review.closed
    assert [s.event for s in review.history] == [
        Event.PROPOSE_MATCH,
        Event.PEER_ASSESS,
        Event.PEER_AGREE,
        Event.APPROVE,
    ]
    assert [(s.from_state, s.to_state) for s in review.history] == [
        (State.AWAITING_EXAMINATION, State.AWAITING_PEER_ASSESSMENT),
        (State.AWAITING_PEER_ASSESSMENT, State.AWAITING_PEER_VERDICT),
        (State.AWAITING_PEER_VERDICT, State.AWAITING_APPROVAL),
        (State.AWAITING_APPROVAL, State.APPROVED),
    ]
    assert [s.seq for s in review.history] == [1, 2, 3, 4]
    assert (review.examiner, review.peer_reviewer) == ("alice", "bob")
    assert review.proposed_face_ids == {100}
    assert review.blind_concordance is True
    timeline = review.timeline()
    assert timeline[0]["by"] == "alice"
    assert timeline[0]["findings"][0] == {
        "face_id": 100,
        "outcome": "possible_match",
        "notes": "ear shape, scar above left eyebrow",
    }
    assert timeline[2]["verdict"] == "agree"
    assert timeline[3] == {
        "seq": 4,
        "event": "approve",
        "from_state": "awaiting_approval",
        "to_state": "approved",
        "by": "carol",
        "at": "2025-06-01T09:04:00+00:00",
        "notes": "lead may be disseminated",
    }


def test_no_possible_match_closes_without_review() -> None:
    review = examine(fresh(), "alice", findings(None), at=at(1))
    assert review.state is State.CLOSED_NO_LEAD
    assert review.history[0].event is Event.RECORD_NO_LEAD
    assert review.proposed_face_ids == frozenset()


def test_inconclusive_only_is_no_lead() -> None:
    marks = [Finding(c.face_id, Outcome.INCONCLUSIVE, "low resolution") for c in CANDIDATES]
    assert examine(fresh(), "alice", marks, at=at(1)).state is State.CLOSED_NO_LEAD


def test_a_disputed_lead_can_only_be_rejected() -> None:
    review = disputed()
    assert review.state is State.DISPUTED
    assert review.blind_concordance is False
    with pytest.raises(InvalidTransitionError, match="'disputed', where 'approve' cannot happen"):
        approve(review, "carol", at=at(4))
    closed = reject(review, "carol", "peer reviewer disagrees", at=at(4))
    assert closed.state is State.REJECTED


def test_supervisor_may_reject_an_agreed_lead() -> None:
    assert reject(agreed(), "carol", "insufficient corroboration", at=at(4)).state is State.REJECTED


def test_an_empty_candidate_list_can_be_closed() -> None:
    review = open_review("s-0", "2025/CID/000001", "alice", (), at=T0)
    assert examine(review, "alice", [], at=at(1)).state is State.CLOSED_NO_LEAD


# --- the transition table ---------------------------------------------------------------


def test_transition_table_is_exactly_the_documented_one() -> None:
    assert dict(TRANSITIONS) == {
        (State.AWAITING_EXAMINATION, Event.RECORD_NO_LEAD): State.CLOSED_NO_LEAD,
        (State.AWAITING_EXAMINATION, Event.PROPOSE_MATCH): State.AWAITING_PEER_ASSESSMENT,
        (State.AWAITING_PEER_ASSESSMENT, Event.PEER_ASSESS): State.AWAITING_PEER_VERDICT,
        (State.AWAITING_PEER_VERDICT, Event.PEER_AGREE): State.AWAITING_APPROVAL,
        (State.AWAITING_PEER_VERDICT, Event.PEER_DISAGREE): State.DISPUTED,
        (State.AWAITING_APPROVAL, Event.APPROVE): State.APPROVED,
        (State.AWAITING_APPROVAL, Event.REJECT): State.REJECTED,
        (State.DISPUTED, Event.REJECT): State.REJECTED,
    }
    assert {State.CLOSED_NO_LEAD, State.APPROVED, State.REJECTED} == TERMINAL_STATES


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s, e in itertools.product(State, Event) if (s, e) not in TRANSITIONS],
)
def test_every_other_pair_raises_naming_state_and_event(state: State, event: Event) -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        next_state(state, event, search_id="s-9")
    assert (caught.value.state, caught.value.event) == (state, event)
    assert f"'{state.value}'" in str(caught.value)
    assert f"'{event.value}'" in str(caught.value)
    assert "'s-9'" in str(caught.value)
    assert isinstance(caught.value, ConflictError)


def test_allowed_events_per_state() -> None:
    assert allowed_events(State.AWAITING_PEER_VERDICT) == (Event.PEER_AGREE, Event.PEER_DISAGREE)
    assert allowed_events(State.APPROVED) == ()
    with pytest.raises(InvalidTransitionError, match=r"possible: none \(the review is closed\)"):
        next_state(State.APPROVED, Event.APPROVE)


@pytest.mark.parametrize(
    ("make", "command"),
    [
        (fresh, PeerAssess("bob", at(1), tuple(findings()))),
        (fresh, Approve("carol", at(1))),
        (proposed, Examine("alice", at(2), tuple(findings()))),
        (proposed, RecordVerdict("bob", at(2), PeerVerdict.AGREE)),
        (assessed, Approve("carol", at(3))),
        (agreed, PeerAssess("dave", at(4), tuple(findings()))),
        (lambda: approve(agreed(), "carol", at=at(4)), Reject("carol", at(5), "changed mind")),
    ],
)
def test_out_of_order_steps_are_refused(make: Callable[[], Review], command: Command) -> None:
    review = make()
    with pytest.raises(InvalidTransitionError, match=f"in state '{review.state.value}'"):
        apply(review, command)


# --- separation of duties -----------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "erin"])
def test_searcher_or_examiner_cannot_peer_review(who: str) -> None:
    review = examine(fresh(), "erin", findings(), at=at(1))  # erin examined alice's search
    with pytest.raises(SeparationOfDutiesError, match=f"'{who}' ran or examined search 'search-1'"):
        peer_assess(review, who, findings(), at=at(2))


def test_the_verdict_must_come_from_the_blind_assessor() -> None:
    with pytest.raises(SeparationOfDutiesError, match="must come from 'bob'"):
        record_verdict(assessed(), "dave", PeerVerdict.AGREE, at=at(3))


@pytest.mark.parametrize("who", ["alice", "bob", "erin"])
def test_nobody_involved_approves_or_rejects(who: str) -> None:
    review = examine(fresh(), "erin", findings(), at=at(1))
    review = peer_assess(review, "bob", findings(), at=at(2))
    review = record_verdict(review, "bob", PeerVerdict.AGREE, at=at(3))
    with pytest.raises(SeparationOfDutiesError, match=f"'{who}' took part"):
        approve(review, who, at=at(4))
    with pytest.raises(SeparationOfDutiesError):
        reject(review, who, "no", at=at(4))


def test_a_refused_step_leaves_the_review_unchanged() -> None:
    review = agreed()
    with pytest.raises(SeparationOfDutiesError):
        approve(review, "bob", at=at(4))
    assert review.state is State.AWAITING_APPROVAL
    assert len(review.history) == 3


# --- content of steps ----------------------------------------------------------------------


def test_every_candidate_needs_exactly_one_finding() -> None:
    with pytest.raises(ValidationError, match=r"missing face ids: \[102\]; not candidates: \[\]"):
        examine(fresh(), "alice", findings()[:2], at=at(1))
    extra = [*findings(), Finding(999, Outcome.NO_MATCH)]
    with pytest.raises(ValidationError, match=r"not candidates: \[999\]"):
        examine(fresh(), "alice", extra, at=at(1))
    twice = [*findings(), Finding(101, Outcome.INCONCLUSIVE)]
    with pytest.raises(ValidationError, match="a candidate has two findings"):
        examine(fresh(), "alice", twice, at=at(1))


def test_a_possible_match_needs_notes() -> None:
    with pytest.raises(ValidationError, match="face 100 needs notes"):
        examine(fresh(), "alice", findings(notes="  "), at=at(1))
    with pytest.raises(ValidationError, match="face 100 needs notes"):
        peer_assess(proposed(), "bob", findings(notes=""), at=at(2))


def test_disagreement_and_rejection_need_reasons() -> None:
    with pytest.raises(ValidationError, match="a disagreement needs notes"):
        record_verdict(assessed(), "bob", PeerVerdict.DISAGREE, " ", at=at(3))
    with pytest.raises(ValidationError, match="a rejection needs a reason"):
        reject(agreed(), "carol", "", at=at(4))


def test_steps_cannot_go_back_in_time_or_be_anonymous() -> None:
    with pytest.raises(ValidationError, match="earlier than the previous step"):
        peer_assess(proposed(), "bob", findings(), at=at(0))
    with pytest.raises(ValidationError, match="timezone-aware"):
        examine(fresh(), "alice", findings(), at=datetime(2025, 6, 1, 10, 0))
    with pytest.raises(ValidationError, match="needs the person taking it"):
        examine(fresh(), " ", findings(), at=at(1))


def test_open_review_validates() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        open_review("s", "c", "alice", (*CANDIDATES, CANDIDATES[0]), at=T0)
    with pytest.raises(ValidationError, match="non-empty case number"):
        open_review("s", " ", "alice", CANDIDATES, at=T0)


# --- blind peer view -----------------------------------------------------------------------


def test_peer_view_is_blind_until_the_reviewer_has_assessed() -> None:
    view = peer_view(proposed(), "bob")
    assert view.blind
    assert view.examiner_findings == ()
    assert view.own_findings == ()
    assert view.candidates == CANDIDATES
    assert "alice" not in repr(view)  # not even the examiner's name
    assert "scar" not in repr(view)

    revealed = peer_view(assessed(101), "bob")
    assert not revealed.blind
    assert revealed.examiner_findings == tuple(findings())
    assert revealed.own_findings == tuple(findings(101))


def test_peer_view_refuses_the_searcher_examiner_and_other_reviewers() -> None:
    with pytest.raises(SeparationOfDutiesError):
        peer_view(proposed(), "alice")
    with pytest.raises(SeparationOfDutiesError, match="peer-reviewed by 'bob', not 'dave'"):
        peer_view(assessed(), "dave")


@pytest.mark.parametrize("make", [fresh, lambda: examine(fresh(), "alice", findings(None), at=at(1))])
def test_peer_view_needs_a_peer_review(make: Callable[[], Review]) -> None:
    with pytest.raises(ReviewError, match="there is no peer review"):
        peer_view(make(), "bob")


# --- history is immutable and replayable ------------------------------------------------------


def test_review_and_history_are_immutable() -> None:
    review = agreed()
    with pytest.raises(AttributeError):
        review.state = State.APPROVED  # type: ignore[misc]
    with pytest.raises(AttributeError):
        review.history[0].command.by = "mallory"  # type: ignore[misc]
    assert isinstance(review.history, tuple)


def test_replay_rebuilds_the_same_review_and_rechecks_rules() -> None:
    final = approve(agreed(), "carol", at=at(4))
    commands = [step.command for step in final.history]
    assert replay(fresh(), commands) == final
    tampered = [*commands[:3], Approve("bob", at(4))]
    with pytest.raises(SeparationOfDutiesError):
        replay(fresh(), tampered)


# --- property: any sequence of commands keeps the invariants ------------------------------------

_people = st.sampled_from(["alice", "bob", "carol", "dave"])
_outcomes = st.lists(st.sampled_from(list(Outcome)), min_size=3, max_size=3)


_KINDS = ["examine", "assess", "verdict", "approve", "reject"]
# What would move each state on, drawn more often so that sequences get far.
_NEXT = {
    State.AWAITING_EXAMINATION: ["examine"],
    State.AWAITING_PEER_ASSESSMENT: ["assess"],
    State.AWAITING_PEER_VERDICT: ["verdict"],
    State.AWAITING_APPROVAL: ["approve", "reject"],
    State.DISPUTED: ["reject"],
}


@st.composite
def commands(draw: st.DrawFn, minute: int, state: State) -> Command:
    who = draw(_people)
    when = at(minute)
    kind = draw(st.sampled_from(_NEXT.get(state, []) * 4 + _KINDS))
    if kind in ("examine", "assess"):
        marks = tuple(
            Finding(c.face_id, o, "notes") for c, o in zip(CANDIDATES, draw(_outcomes), strict=True)
        )
        return Examine(who, when, marks) if kind == "examine" else PeerAssess(who, when, marks)
    if kind == "verdict":
        return RecordVerdict(who, when, draw(st.sampled_from(list(PeerVerdict))), "why")
    return Approve(who, when) if kind == "approve" else Reject(who, when, "why")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_command_sequences_keep_the_invariants(data: st.DataObject) -> None:
    review = fresh()
    for minute in range(1, 13):
        command = data.draw(commands(minute, review.state))
        try:
            review = apply(review, command)
        except (ReviewError, ValidationError):
            continue
    states = [State.AWAITING_EXAMINATION] + [s.to_state for s in review.history]
    for step, (before, after) in zip(review.history, itertools.pairwise(states), strict=True):
        assert TRANSITIONS[(before, step.event)] == after
    people = {s.event: s.by for s in review.history}
    if Event.PEER_ASSESS in people:
        assert people[Event.PEER_ASSESS] not in {"alice", review.examiner}
    for decision in (Event.APPROVE, Event.REJECT):
        if decision in people:
            assert people[decision] not in {"alice", review.examiner, review.peer_reviewer}
    if review.state is State.APPROVED:
        assert review.verdict is not None
        assert review.verdict.verdict is PeerVerdict.AGREE


# --- the feature worksheet -------------------------------------------------------------


def test_a_worksheet_is_parsed_in_the_components_order_and_kept_with_the_finding() -> None:
    sheet = parse_worksheet(
        {
            "scars_marks_tattoos": {"comparison": "similar", "notes": "scar over the left eyebrow"},
            "ears": {"comparison": "dissimilar"},
            "face_shape": {"comparison": "not_visible", "notes": ""},
        }
    )
    assert [row.feature for row in sheet] == [Feature.FACE_SHAPE, Feature.EARS, Feature.MARKS]
    assert sheet[1] == FeatureRow(Feature.EARS, Comparison.DISSIMILAR, "")
    finding = Finding(7, Outcome.POSSIBLE_MATCH, "scar", sheet)
    assert finding.to_dict()["worksheet"]["scars_marks_tattoos"] == {
        "comparison": "similar",
        "notes": "scar over the left eyebrow",
    }
    assert "worksheet" not in Finding(7, Outcome.NO_MATCH).to_dict()  # absent when none was made
    assert parse_worksheet(finding.to_dict()["worksheet"]) == sheet  # it round-trips


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"tattoo": {"comparison": "similar"}}, "not a facial component"),
        ({"nose": {"comparison": "same"}}, "nose needs a comparison"),
        ({"nose": {}}, "nose needs a comparison"),
        ({"nose": "similar"}, "nose needs a comparison and notes"),
        ({"nose": {"comparison": "similar", "notes": "x" * 2001}}, "at most 2000"),
        ({"nose": {"comparison": "similar", "notes": 3}}, "must be text"),
        (["nose"], "is a mapping"),
    ],
)
def test_a_bad_worksheet_is_refused_naming_the_row(raw: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_worksheet(raw)  # type: ignore[arg-type]


def test_a_worksheet_lists_each_component_once() -> None:
    row = FeatureRow(Feature.NOSE, Comparison.SIMILAR)
    with pytest.raises(ValidationError, match="lists a component twice"):
        Finding(1, Outcome.INCONCLUSIVE, "", (row, row))
