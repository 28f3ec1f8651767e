"""Red team: the policy says which units administer a gallery, and what a device and a token are bound to.

The holes: a gallery's administrators were whoever created it (and a gallery made before
galleries had owners stayed open to every unit's administrators), whatever the written
policy says; a person of another unit could work from the facial identification unit's
workstation; and an API token, once made, worked from any machine. Now:

- ``[[galleries]] admin_units`` names the units whose gallery administrators may create,
  enrol into and purge a gallery; everyone else is refused ``gallery.admin_unit_not_allowed``,
  legacy galleries included. Where the policy names none, the owner unit decides
  (``scope.other_unit``, see test_redteam_gallery_units.py).
- a device belongs to the unit it was registered to; another unit's person is refused what
  needs a device (``device.other_unit``) unless ``[devices] other_units = true``
  (see also test_policy_api.py).
- an API token is bound to the registered device of the session that made it and is
  accepted only with that device's credential; a session on no registered device gets none
  (``token.device_required``); a server token, bound to no device, needs
  ``[devices] server_tokens = true`` (``token.server_not_allowed``) and can do nothing that
  needs a device.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from web_helpers import API, CUSTODY, PAROLE, Agency, Session, audit_rows, error_of, running, template

from faceledger.adapters.policy_file import example_policy_text
from faceledger.services import galleries

__all__ = ["template"]  # fixtures

RECORDS = "records"
TRAFFIC = "traffic"


def _policy(*, version: str, admin_units: str | None = RECORDS, server_tokens: bool = False) -> str:
    """The example policy, its custody gallery administered by ``admin_units`` (None: by no unit named)."""
    text = example_policy_text().replace('version = "example-2025.1"', f'version = "{version}"')
    head = f'[[galleries]]\nname = "{CUSTODY}"\nunits = ["facial-identification"]\n'
    shipped = f'{head}admin_units = ["facial-identification"]\n'
    assert shipped in text
    named = "" if admin_units is None else f'admin_units = ["{admin_units}"]\n'
    text = text.replace(shipped, head + named)
    if server_tokens:
        assert "server_tokens = false" in text
        text = text.replace("server_tokens = false", "server_tokens = true")
    return text


def _load(agency: Agency, text: str) -> None:
    loaded = agency.client.put(f"{API}/policy", json={"text": text}, headers=agency.admin().headers)
    assert loaded.status_code == 200, loaded.text


def _refused(agency: Agency, answer: httpx2.Response, rule: str, attempted: str, who: str) -> dict[str, Any]:
    assert answer.status_code == 403, answer.text
    error = error_of(answer)
    assert error["rule_id"] == rule, error
    denial = audit_rows(agency.dd, "policy_denied")[-1]
    assert (denial["actor"], denial["details"]["attempted"]) == (who, attempted)
    assert denial["details"]["decision"]["rule_id"] == rule
    return error


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with running(tmp_path / "data", template) as started:
        started.add("gil.fiu", "gallery_admin")
        started.add("rex.records", "gallery_admin", unit=RECORDS)
        started.add("tom.traffic", "gallery_admin", unit=TRAFFIC)
        started.add("eve.examiner", "examiner")
        yield started


def _create(agency: Agency, session: Session, name: str) -> httpx2.Response:
    body = {"name": name, "legal_basis": "PACE s.64A", "source_description": "custody suite"}
    return agency.client.post(f"{API}/galleries", json=body, headers=session.headers)


def _enrol(agency: Agency, session: Session, gallery: str) -> httpx2.Response:
    form = {"subject_id": "S-1", "source": "custody record 1", "collected_on": "2024-05-01"}
    files = {"image": ("s1.jpg", b"not an image", "image/jpeg")}
    return agency.client.post(
        f"{API}/galleries/{gallery}/images", data=form, files=files, headers=session.headers
    )


def test_the_policy_names_who_administers_a_gallery_and_nobody_else_does(agency: Agency) -> None:
    _load(agency, _policy(version="units-1"))
    gil, rex, tom = (agency.login(u) for u in ("gil.fiu", "rex.records", "tom.traffic"))
    # Creating it: only the records unit's administrators, as the policy says.
    error = _refused(
        agency, _create(agency, gil, CUSTODY), "gallery.admin_unit_not_allowed", "manage_galleries", "gil.fiu"
    )
    assert "administered by the units records under the policy" in error["message"]
    assert "'gil.fiu' is of unit 'facial-identification'" in error["message"]
    made = _create(agency, rex, CUSTODY)
    assert made.status_code == 201, made.text
    # Enrolling into it and purging it: the same.
    _refused(agency, _enrol(agency, tom, CUSTODY), "gallery.admin_unit_not_allowed", "enrol", "tom.traffic")
    purge = agency.client.delete(
        f"{API}/galleries/{CUSTODY}",
        params={"reason": "court_order", "authority": "Order 1", "confirm": CUSTODY},
        headers=gil.headers,
    )
    _refused(agency, purge, "gallery.admin_unit_not_allowed", "purge", "gil.fiu")
    # The administering unit gets past the door (the upload is then refused for what it is).
    past = _enrol(agency, rex, CUSTODY)
    assert past.status_code == 422, past.text
    # A gallery the policy names no administrators for keeps the owner unit's rule.
    assert _create(agency, gil, "fiu-scratch").status_code == 201
    _refused(agency, _enrol(agency, tom, "fiu-scratch"), "scope.other_unit", "enrol", "tom.traffic")
    # The shipped example names the identification unit for both of its galleries.
    assert _create(agency, gil, PAROLE).status_code == 201
    _refused(agency, _enrol(agency, tom, PAROLE), "gallery.admin_unit_not_allowed", "enrol", "tom.traffic")


def test_a_legacy_gallery_with_no_owner_is_closed_by_the_policy(agency: Agency) -> None:
    galleries.create_gallery(agency.dd, CUSTODY, legal_basis="PACE s.64A", source_description="custody")
    _load(agency, _policy(version="units-open", admin_units=None))  # legacy: open to every unit
    tom = agency.login("tom.traffic")
    assert _enrol(agency, tom, CUSTODY).status_code == 422  # past the door, refused as an upload
    _load(agency, _policy(version="units-2"))
    _refused(agency, _enrol(agency, tom, CUSTODY), "gallery.admin_unit_not_allowed", "enrol", "tom.traffic")
    assert _enrol(agency, agency.login("rex.records"), CUSTODY).status_code == 422


def _make_token(agency: Agency, session: Session, **extra: Any) -> httpx2.Response:
    body = {"name": "script", "scopes": ["examiner"], "days": 1, **extra}
    return agency.client.post(f"{API}/tokens", json=body, headers=session.headers)


def _search(agency: Agency, session: Session) -> httpx2.Response:
    form = {
        "case_number": "2025/CID/004211",
        "purpose": "criminal_investigation",
        "galleries": [CUSTODY],
    }
    files = {"probe": ("probe.jpg", b"not a photo", "image/jpeg")}
    return agency.client.post(f"{API}/searches", data=form, files=files, headers=session.headers)


def test_a_token_works_only_with_the_device_it_was_made_on(agency: Agency) -> None:
    agency.load_example_policy()
    galleries.create_gallery(agency.dd, CUSTODY, legal_basis="PACE s.64A", source_description="custody")
    nowhere = agency.login("eve.examiner", device=None)
    _refused(agency, _make_token(agency, nowhere), "token.device_required", "create_token", "eve.examiner")
    eve = agency.login("eve.examiner")
    made = _make_token(agency, eve)
    assert made.status_code == 201, made.text
    assert made.json()["token"]["device_id"] == "ws-01"
    secret = made.json()["secret"]
    # With its device it searches (past the door: the fake probe is refused for what it is).
    assert _search(agency, Session("eve.examiner", secret, eve.device)).status_code == 422
    # Copied elsewhere: with another unit's registered device, or with none, it is refused.
    for device in (agency.device_of(TRAFFIC), None):
        answer = agency.client.get(f"{API}/auth/me", headers=Session("eve.examiner", secret, device).headers)
        assert answer.status_code == 401, answer.text
        assert "bound to device 'ws-01'" in error_of(answer)["message"]
        denial = audit_rows(agency.dd, "policy_denied")[-1]
        assert (denial["actor"], denial["details"]["attempted"]) == ("eve.examiner", "use_token")


def test_a_server_token_needs_the_policy_and_can_do_nothing_that_needs_a_device(agency: Agency) -> None:
    agency.load_example_policy()
    galleries.create_gallery(agency.dd, CUSTODY, legal_basis="PACE s.64A", source_description="custody")
    eve = agency.login("eve.examiner")
    _refused(
        agency,
        _make_token(agency, eve, server=True),
        "token.server_not_allowed",
        "create_token",
        "eve.examiner",
    )
    _load(agency, _policy(version="servers-1", server_tokens=True))
    made = _make_token(agency, agency.login("eve.examiner", device=None), server=True)
    assert made.status_code == 201, made.text
    assert (made.json()["token"]["device_id"], made.json()["token"]["server"]) == (None, True)
    secret = made.json()["secret"]
    me = agency.client.get(f"{API}/auth/me", headers=Session("eve.examiner", secret, None).headers)
    assert me.status_code == 200, me.text
    # Even sent with a registered device's credential, a server token acts from no device.
    for device in (None, eve.device):
        refused = _search(agency, Session("eve.examiner", secret, device))
        _refused(agency, refused, "device.unregistered", "search", "eve.examiner")
