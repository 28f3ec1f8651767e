"""Canonical serialisation: one byte form per value, and refusal of values without one."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faceledger.audit import events as ev
from faceledger.audit import verify
from faceledger.audit.canonical import (
    ENTRY_DOMAIN,
    MAX_SAFE_INTEGER,
    canonical_json,
    entry_bytes,
    entry_from_json,
    entry_json,
    entry_leaf_data,
    entry_signature_message,
    format_timestamp,
    parse_timestamp,
)
from faceledger.audit.events import AuditAction, AuditEntry, AuditEvent, decimal_string
from faceledger.errors import ValidationError

text = st.text(st.characters(codec="utf-8"), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


def test_sorted_keys_no_whitespace_utf8() -> None:
    value: dict[str, Any] = {"b": [1, True, None], "a": "Zoë 李", "c": {"y": 1, "x": -2}}
    assert canonical_json(value) == '{"a":"Zoë 李","b":[1,true,null],"c":{"x":-2,"y":1}}'.encode()


def test_insertion_order_does_not_matter() -> None:
    assert canonical_json({"x": 1, "y": {"b": 2, "a": 3}}) == canonical_json({"y": {"a": 3, "b": 2}, "x": 1})


def test_tuples_and_nested_mappings_are_plain_json() -> None:
    entry = AuditEntry(
        1, "2024-05-01T09:00:00.000000Z", "a", "search", "o", {"pair": (1, 2), "m": {"k": "v"}}
    )
    assert b'"details":{"m":{"k":"v"},"pair":[1,2]}' in entry_bytes(entry)


@pytest.mark.parametrize(
    ("value", "path", "reason"),
    [
        ({"score": 0.5}, "$.score", "float"),
        ({"s": float("nan")}, "$.s", "float"),
        ({"s": [float("inf")]}, "$.s[0]", "float"),
        ({1: "x"}, "$", "not a string"),
        ({"n": MAX_SAFE_INTEGER + 1}, "$.n", "too large"),
        ({"t": "\ud800"}, "$.t", "not valid Unicode"),
        ({"b": b"raw"}, "$.b", "not a JSON value"),
        ({"s": {1, 2}}, "$.s", "not a JSON value"),
    ],
)
def test_values_without_one_text_form_are_refused(value: Any, path: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=rf"at {re.escape(path)}: .*{reason}"):
        canonical_json(value)


@given(json_values)
def test_canonical_form_is_stable_and_round_trips(value: Any) -> None:
    encoded = canonical_json(value)
    decoded = json.loads(encoded)
    assert decoded == json.loads(json.dumps(value))
    assert canonical_json(decoded) == encoded


@given(json_values)
def test_the_standalone_verifier_serialises_identically(value: Any) -> None:
    assert verify.canonical_json(json.loads(json.dumps(value))) == canonical_json(value)


def test_timestamps_are_utc_with_microseconds() -> None:
    moment = datetime(2024, 5, 1, 11, 30, 0, 250, tzinfo=timezone(timedelta(hours=2)))
    text = format_timestamp(moment)
    assert text == "2024-05-01T09:30:00.000250Z"
    assert parse_timestamp(text) == moment


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T09:30:00Z", "2024-05-01T09:30:00.000000+00:00", "2024-02-30T00:00:00.000000Z", "yesterday"],
)
def test_other_spellings_of_a_timestamp_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="timestamp"):
        parse_timestamp(text)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        format_timestamp(datetime(2024, 5, 1, 9, 0))


def _entry(**changes: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "seq": 3,
        "timestamp": format_timestamp(datetime(2024, 5, 1, tzinfo=UTC)),
        "actor": "alice",
        "action": "search",
        "object": "search:s1",
        "details": {"probe_sha256": "ab" * 32},
    }
    fields.update(changes)
    return AuditEntry(**fields)


def test_entry_bytes_are_domain_separated() -> None:
    entry = _entry()
    assert entry_leaf_data(entry) == ENTRY_DOMAIN + entry_bytes(entry)
    assert entry_bytes(entry).startswith(b'{"action":"search","actor":"alice","details":')


def test_every_field_changes_the_bytes() -> None:
    base = entry_bytes(_entry())
    variants = [
        _entry(seq=4),
        _entry(timestamp="2024-05-01T00:00:00.000001Z"),
        _entry(actor="bob"),
        _entry(action="purge"),
        _entry(object="search:s2"),
        _entry(details={"probe_sha256": "ac" * 32}),
    ]
    assert len({base, *(entry_bytes(v) for v in variants)}) == 7


def test_entry_json_round_trip() -> None:
    entry = _entry(details={"nested": {"list": [1, "two", None]}})
    again = entry_from_json(json.loads(entry_bytes(entry)), where="test")
    assert entry_bytes(again) == entry_bytes(entry)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("actor"), "exactly the fields"),
        (lambda d: d.update(extra=1), "exactly the fields"),
        (lambda d: d.update(actor=5), "'actor' must be a string"),
        (lambda d: d.update(details=[1]), "'details' must be an object"),
        (lambda d: d.update(details={"score": 0.9}), "float"),
        (lambda d: d.update(ts="2024-05-01"), "timestamp"),
        (lambda d: d.update(seq=0), "start at 1"),
        (lambda d: d.update(seq=True), "start at 1"),
    ],
)
def test_malformed_entry_json_is_refused(mutate: Any, message: str) -> None:
    data = entry_json(_entry())
    mutate(data)
    with pytest.raises(ValidationError, match=message):
        entry_from_json(data, where="row 3")


def test_entry_signature_message_binds_the_log() -> None:
    leaf = bytes(range(32))
    assert entry_signature_message("log-a", leaf) != entry_signature_message("log-b", leaf)
    with pytest.raises(ValidationError, match="log id"):
        entry_signature_message("bad\nid", leaf)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.93, "0.930000"), (-1.5, "-1.500000"), (-0.0000001, "0.000000"), (12.0, "12.000000")],
)
def test_decimal_string(value: float, text: str) -> None:
    assert decimal_string(value) == text


def test_decimal_string_refuses_nan() -> None:
    with pytest.raises(ValidationError, match="finite"):
        decimal_string(float("nan"))


def test_events_are_checked_and_frozen() -> None:
    with pytest.raises(ValidationError, match="actor"):
        AuditEvent(" ", AuditAction.SEARCH, "x")
    with pytest.raises(ValidationError, match="AuditAction"):
        AuditEvent("alice", "search", "x")  # type: ignore[arg-type]
    event = AuditEvent("alice", AuditAction.SEARCH, "x", {"k": 1})
    with pytest.raises(TypeError):
        event.details["k"] = 2  # type: ignore[index]


BUILDERS = [
    ev.log_created(log_id="unit-7", key_fingerprint="sha256:" + "0" * 64),
    ev.sign_in("alice", device_id=None, mfa=True),
    ev.sign_in_failed("mallory", reason="bad password", device_id="dev-9"),
    ev.search(
        "alice",
        search_id="s1",
        probe_sha256="ab" * 32,
        galleries=("arrests",),
        model_key="dlib/x/1/abc",
        threshold=decimal_string(0.93),
        score_normalisation="none",
        top_k=10,
        case_ref="C-1",
        purpose="investigation",
    ),
    ev.candidates_shown("alice", search_id="s1", candidates=[{"rank": 1, "face_id": 7}]),
    ev.candidate_viewed("alice", search_id="s1", subject_id="S-1", face_id=7),
    ev.policy_denied("bob", attempted="search", target="gallery:arrests", reason="auditors cannot search"),
    ev.enrolled(
        "carol",
        gallery="arrests",
        subject_id="S-1",
        face_ids=[7],
        image_sha256="cd" * 32,
        provenance={"source": "custody", "collected_on": "2024-04-30"},
    ),
    ev.purged(
        "carol",
        gallery="arrests",
        face_ids=[7, 8],
        reason="court_order",
        authority="Order 2026-123",
        scope="subject:4",
        purge_id=1,
    ),
    ev.gallery_created(
        "carol",
        gallery="arrests",
        legal_basis="State Code 12-34",
        source_description="booking photos",
        retention_days=3650,
        required_provenance=("source", "collected_on"),
    ),
    ev.exported("dave", what="audit", destination="/media/usb/audit.json", count=12),
    ev.account_changed("erin", account="alice", change="roles", values={"roles": ["examiner"]}),
    ev.policy_changed("erin", policy_sha256_before=None, policy_sha256_after="ef" * 32),
    ev.device_registered("erin", device_id="dev-1", description="unit laptop 1"),
    ev.verified(
        "alice",
        search_id="s2",
        probe_sha256s=["ab" * 32, "cd" * 32],
        model_key="dlib/x/1/abc",
        threshold=decimal_string(0.93),
        score_normalisation="none",
        score=decimal_string(0.95),
        case_ref="C-1",
        purpose="investigation",
        device_id="dev-1",
        policy_version="p-1",
        rule_ids=["verify.allowed"],
    ),
    ev.review_step(
        "bob",
        search_id="s1",
        case_ref="C-1",
        seq=1,
        event="propose_match",
        from_state="awaiting_examination",
        to_state="awaiting_peer_assessment",
        details={"findings": [{"face_id": 7, "outcome": "possible_match", "notes": "ear"}]},
    ),
    ev.probe_viewed("eve", search_id="41", probe_sha256="ab" * 32, searched_sha256="cd" * 32),
    ev.offline_use("search", target="gallery:arrests", details={"probe_sha256": "ab" * 32, "candidates": 3}),
    ev.action_failed(
        "bob",
        attempted="search",
        target="gallery:arrests",
        code="no_face",
        reason="no face found in the probe",
        details={"case_ref": "C-1", "decision_id": 4},
    ),
]


def test_one_builder_per_action() -> None:
    assert {event.action for event in BUILDERS} == set(AuditAction)


@pytest.mark.parametrize("event", BUILDERS, ids=lambda e: e.action.value)
def test_every_builder_makes_a_serialisable_entry(event: AuditEvent) -> None:
    entry = event.at(1, "2024-05-01T09:00:00.000000Z")
    data = json.loads(entry_bytes(entry))
    assert data["action"] == event.action.value
    assert data["actor"] == event.actor
    assert data["details"] == json.loads(json.dumps(dict(event.details)))


def test_search_event_records_the_probe_hash() -> None:
    search = BUILDERS[3]
    assert search.details["probe_sha256"] == "ab" * 32
    assert search.details["threshold"] == "0.930000"
