"""Red team: hostile identifiers and free text, over the API, the services and the real CLI.

Each test is one hole found by trying the service as an attacker inside the agency would:
digits from other scripts in case numbers, invisible justifications, blank agencies,
dot ids that an HTTP client turns into the gallery's own URL, and terminal escape codes
written to the audit log and printed raw by ``faceledger audit log``. The policy decides a
search before its photo is decoded, so search requests carry bytes that are not a photo: a
request that got past the policy fails with ``bad_image`` instead of the refusal expected.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from signed_in_unit import SignedInUnit, build_unit
from web_helpers import (
    API,
    CASE,
    CUSTODY,
    PAROLE,
    PASSWORD,
    PURPOSE,
    Agency,
    Session,
    audit_rows,
    error_of,
    running,
    template,
)

from faceledger.audit import events as ev
from faceledger.errors import ValidationError
from faceledger.services import audit, galleries, searches
from faceledger.services.devices import DeviceCredential, check_device

__all__ = ["template"]  # fixtures

NOT_A_PHOTO = b"not a photo"
FORM: dict[str, Any] = {
    "case_number": CASE,
    "purpose": PURPOSE,
    "galleries": [CUSTODY],
    "justification": "robbery at the post office",
}
#: A username that clears the screen, writes a forged log row, and hides the rest.
FORGED = "eve\x1b[2J\x1b[H\n  1  2025-06-02  ada.admin  policy_loaded\u202e"


def hidden(value: str) -> list[str]:
    return [c for c in value if unicodedata.category(c) in {"Cc", "Cf"}]


def search(agency: Agency, session: Session, **changes: Any) -> httpx2.Response:
    form = {k: v for k, v in {**FORM, **changes}.items() if v is not None}
    files = {"probe": ("probe.jpg", NOT_A_PHOTO, "image/jpeg")}
    return agency.client.post(f"{API}/searches", data=form, files=files, headers=session.headers)


class Unit:
    def __init__(self, agency: Agency) -> None:
        self.agency = agency
        agency.load_example_policy()
        galleries.create_gallery(agency.dd, CUSTODY, legal_basis="PACE s.64A", source_description="LFW")
        agency.add("eve.examiner", "examiner")
        agency.add("gil.galleries", "gallery_admin")

    def eve(self) -> Session:
        return self.agency.login("eve.examiner")

    def gil(self) -> Session:
        return self.agency.login("gil.galleries")


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Iterator[Unit]:
    with running(tmp_path_factory.mktemp("hostile") / "data", template) as agency:
        yield Unit(agency)


# --- case numbers, justification, on_behalf_of -------------------------------------------------


@pytest.mark.parametrize(
    "case_number",
    ["２０２５/CID/００４２１１", "\u0662\u0660\u0662\u0665/CID/\u0660\u0660\u0664\u0662\u0661\u0661"],
    ids=["fullwidth", "arabic-indic"],
)
def test_case_numbers_with_digits_of_other_scripts_do_not_match_the_pattern(
    unit: Unit, case_number: str
) -> None:
    answer = search(unit.agency, unit.eve(), case_number=case_number)
    assert answer.status_code == 403, answer.text
    assert error_of(answer)["rule_id"] == "case.malformed"


@pytest.mark.parametrize("case_number", [f"{CASE}\u200b", f"\u202e{CASE}", f"{CASE[:4]}\x1b/CID/004211"])
def test_case_numbers_with_invisible_characters_are_refused(unit: Unit, case_number: str) -> None:
    answer = search(unit.agency, unit.eve(), case_number=case_number)
    assert answer.status_code == 422, answer.text
    message = error_of(answer)["message"]
    assert "case number" in message
    assert "invisible character" in message
    assert not hidden(message)


@pytest.mark.parametrize("justification", ["\u200b", " \u200b\u2060 ", "\ufeff"])
def test_a_justification_of_invisible_characters_is_missing(unit: Unit, justification: str) -> None:
    answer = search(unit.agency, unit.eve(), purpose="missing_person_at_risk", justification=justification)
    assert answer.status_code == 403, answer.text
    assert error_of(answer)["rule_id"] == "justification.missing"


def test_a_justification_with_a_bidi_override_is_refused(unit: Unit) -> None:
    answer = search(unit.agency, unit.eve(), justification="robbery \u202eecilop\u202c at the post office")
    assert answer.status_code == 422, answer.text
    assert "U+202E" in error_of(answer)["message"]


@pytest.mark.parametrize("blank", [" ", "\t \n", "\u200b"])
def test_a_blank_on_behalf_of_is_absent_not_an_agency(blank: str) -> None:
    """Before: the policy skipped the inter-agency rules for " " but the search stored " " as the agency."""
    request = searches.SearchInput(
        case_number=CASE, purpose=PURPOSE, galleries=(CUSTODY,), on_behalf_of=blank
    )
    assert request.on_behalf_of is None
    verify = searches.VerifyInput(case_number=CASE, purpose=PURPOSE, on_behalf_of=blank, agreement_ref=blank)
    assert (verify.on_behalf_of, verify.agreement_ref) == (None, None)


def test_an_agency_with_control_characters_is_refused(unit: Unit) -> None:
    answer = search(unit.agency, unit.eve(), on_behalf_of="Neighbouring\nCounty Police")
    assert answer.status_code == 422, answer.text
    assert "on_behalf_of" in error_of(answer)["message"]


# --- subject ids ---------------------------------------------------------------------------------


def enrol(agency: Agency, session: Session, subject_id: str) -> httpx2.Response:
    form = {"subject_id": subject_id, "source": "custody record", "collected_on": "2024-05-01"}
    files = {"image": ("face.jpg", NOT_A_PHOTO, "image/jpeg")}
    return agency.client.post(
        f"{API}/galleries/{CUSTODY}/images", data=form, files=files, headers=session.headers
    )


@pytest.mark.parametrize("subject_id", [".", "..", " .. ", "A\u200bB", "x\u202ey"])
def test_dot_ids_and_invisible_characters_are_refused_as_subject_ids(unit: Unit, subject_id: str) -> None:
    """Refused before the image is even read (before: accepted, then ``bad_image`` on these bytes)."""
    answer = enrol(unit.agency, unit.gil(), subject_id)
    assert answer.status_code == 422, answer.text
    error = error_of(answer)
    assert error["code"] == "invalid_input", error
    assert "subject id" in error["message"]


def test_purging_a_dot_subject_is_refused_and_leaves_the_gallery(unit: Unit) -> None:
    """Clients send ``DELETE .../subjects/..`` as ``DELETE /galleries/NAME``: such an id must not exist.

    It cannot be enrolled (above); asked for by name, a purge refuses it before looking it up.
    """
    agency = unit.agency
    for dot in (".", ".."):
        with pytest.raises(ValidationError, match="not allowed as a subject id"):
            galleries.purge_subject(agency.dd, CUSTODY, dot, reason="expungement", authority="Order 2026-1")
    assert galleries.get_gallery(agency.dd, CUSTODY).name == CUSTODY


def test_purging_an_encoded_dot_subject_over_the_api_is_refused(unit: Unit) -> None:
    """``%2E%2E`` reaches the service as ".." (an ordinary client would have resolved ``..`` away)."""
    agency = unit.agency
    why = {"reason": "expungement", "authority": "Order 2026-1"}
    url = f"{API}/galleries/{CUSTODY}/subjects/%2E%2E"
    answer = agency.client.delete(url, params=why, headers=unit.gil().headers)
    assert answer.status_code == 422, answer.text
    assert "not allowed as a subject id" in error_of(answer)["message"]
    assert galleries.get_gallery(agency.dd, CUSTODY).name == CUSTODY


def test_a_subject_path_a_client_resolved_away_purges_nothing(unit: Unit) -> None:
    """A client sends ``DELETE .../subjects/..?reason=..`` as ``DELETE /galleries/NAME?reason=..``: 422."""
    agency = unit.agency
    why = {"reason": "expungement", "authority": "Order 2026-1"}
    resolved = agency.client.delete(f"{API}/galleries/{CUSTODY}", params=why, headers=unit.gil().headers)
    assert resolved.status_code == 422, resolved.text
    assert "confirm" in error_of(resolved)["message"]
    wrong = agency.client.delete(
        f"{API}/galleries/{CUSTODY}", params={**why, "confirm": PAROLE}, headers=unit.gil().headers
    )
    assert wrong.status_code == 422, wrong.text
    assert "repeat the gallery's name" in error_of(wrong)["message"]
    assert galleries.get_gallery(agency.dd, CUSTODY).name == CUSTODY


# --- usernames and device ids at sign-in --------------------------------------------------------


def test_a_username_with_escape_codes_is_refused_at_sign_in_and_not_recorded_raw(unit: Unit) -> None:
    agency = unit.agency
    answer = agency.client.post(f"{API}/auth/login", json={"username": FORGED, "password": PASSWORD})
    assert answer.status_code == 401, answer.text
    assert error_of(answer)["message"] == "wrong username or password"
    failed = audit_rows(agency.dd, "sign_in_failed")[-1]
    assert failed["actor"].startswith("eve\\x1b[2J\\x1b[H\\n  1  2025-06-02")
    assert not hidden(failed["actor"])


def test_a_claimed_device_id_with_escape_codes_is_recorded_escaped(unit: Unit) -> None:
    dd = unit.agency.dd
    with dd.store.read() as conn:
        check = check_device(conn, DeviceCredential("ws-01\x1b[2J\nforged", "secret"))
    assert check.device_id is None
    assert check.claimed is not None
    assert not hidden(check.claimed)
    assert check.problem is not None
    assert not hidden(check.problem)


# --- the CLI prints stored values escaped -----------------------------------------------------


@pytest.fixture(scope="module")
def cli_unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedInUnit]:
    built = build_unit(
        tmp_path_factory.mktemp("hostile-cli"), [("otto.auditor", "auditor")], example_policy=True
    )
    yield built
    built.close()


def test_audit_log_prints_escape_codes_in_stored_values_as_text(cli_unit: SignedInUnit) -> None:
    """A sign-in attempt through the real CLI, and a row written raw (as an older version did)."""
    attempt = cli_unit.invoke(None, "login", FORGED, input=f"{PASSWORD}\n\n")
    assert attempt.exit_code != 0
    assert "Traceback" not in attempt.output
    dd = cli_unit.dd
    with dd.store.begin() as conn:
        audit.record(dd, conn, ev.sign_in_failed(FORGED, reason="unknown_user", device_id="ws\x1b]0;x\x07"))
    out = cli_unit.stdout("otto.auditor", "audit", "log", "--per-page", "10000")
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert "\x07" not in out
    assert "\\x1b[2J" in out
    forged_rows = [line for line in out.splitlines() if line.lstrip("│ ").startswith("1  2025-06-02")]
    assert forged_rows == [], out
