"""Red team: separations of duty on roles, face photos behind the second factor and a device,
and purges that say why and stay purged.

The holes:

* an account could hold reviewer and auditor, and so read the examiner's findings in the
  audit log before its "blind" peer review; refusals of a role pair cited no rule and
  showed Python reprs (``<Role.AUDITOR: 'auditor'>``);
* reviewer and auditor accounts signed in with a password only and fetched candidates'
  face photos from no registered device;
* a purge named no reason and no authority, and rerunning the same enrolment put the
  purged photos straight back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts_helpers import FAST, T0, Org
from sqlalchemy import select
from web_helpers import (
    API,
    CUSTODY,
    Agency,
    enrol_people,
    enrol_photo,
    error_of,
    running,
    search_photo,
    shared_pipeline,
    template,
)

from audit_records import audit_rows
from faceledger.adapters.store.tables import purged_images, purges
from faceledger.config import Settings
from faceledger.errors import AuthenticationError, ValidationError
from faceledger.services import accounts, galleries
from faceledger.services.datadir import DataDir, init_data_dir

__all__ = ["template"]  # fixtures

REVIEWER_AUDITOR = "roles.incompatible.reviewer+auditor"


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    dd = init_data_dir(tmp_path / "data", settings=Settings(accounts=FAST))
    try:
        yield Org(dd)
    finally:
        dd.close()


def _last_denial(dd: DataDir) -> dict[str, object]:
    details: dict[str, object] = audit_rows(dd, "policy_denied")[-1]["details"]
    return details


# --- role pairs -----------------------------------------------------------------------------------


def test_reviewer_and_auditor_cannot_be_one_account_and_the_refusal_cites_its_rule(org: Org) -> None:
    with pytest.raises(ValidationError) as refused:
        org.add("rita.both", "reviewer", "auditor")
    message = str(refused.value)
    assert REVIEWER_AUDITOR in message
    assert "roles reviewer and auditor cannot be held by one account" in message
    assert "<Role." not in message
    denial = _last_denial(org.dd)
    assert denial["attempted"] == "create_account"
    assert denial["decision"]["rule_id"] == REVIEWER_AUDITOR  # type: ignore[index]
    with pytest.raises(AuthenticationError):  # the account was never made
        org.sign_in("rita.both")

    org.add("rex.reviewer", "reviewer")
    with pytest.raises(ValidationError, match=r"roles\.incompatible\.reviewer\+auditor"):
        accounts.set_roles(org.dd, org.admin, "rex.reviewer", ["auditor", "reviewer"], now=T0)
    denial = _last_denial(org.dd)
    assert denial["attempted"] == "set_roles"
    assert denial["decision"]["rule_id"] == REVIEWER_AUDITOR  # type: ignore[index]


def test_every_incompatible_pair_has_a_stable_rule_id_and_shows_values(org: Org) -> None:
    with pytest.raises(ValidationError) as refused:
        org.add("sam.both", "examiner", "system_admin")
    message = str(refused.value)
    assert "rule roles.incompatible.examiner+system_admin" in message
    assert "roles examiner and system_admin cannot be held" in message
    assert "<Role." not in message
    ids = {pair.rule_id for pair in accounts.INCOMPATIBLE_ROLES.values()}
    assert {REVIEWER_AUDITOR, "roles.incompatible.examiner+system_admin"} <= ids
    assert all(rule.startswith("roles.incompatible.") for rule in ids)


# --- who sees faces needs the second factor -------------------------------------------------------


@pytest.mark.parametrize("role", ["reviewer", "auditor"])
def test_reviewers_and_auditors_sign_in_with_their_second_factor(org: Org, role: str) -> None:
    username = f"pat.{role}"
    org.add(username, role)
    assert username in org.seeds  # a TOTP was enrolled because the role sees face photos
    seed = org.seeds.pop(username)
    with pytest.raises(AuthenticationError):
        org.sign_in(username)  # the password alone no longer signs in
    org.seeds[username] = seed
    assert org.sign_in(username).actor.mfa_verified


# --- face photos need a registered device ---------------------------------------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, template: Path, lfw_images: Path) -> Iterator[Agency]:
    with running(tmp_path_factory.mktemp("duties") / "data", template, analyzer=shared_pipeline()) as agency:
        agency.load_example_policy()
        galleries.create_gallery(agency.dd, CUSTODY, legal_basis="PACE s.64A", source_description="LFW")
        for username, role in (
            ("gil.gallery", "gallery_admin"),
            ("eve.examiner", "examiner"),
            ("rex.reviewer", "reviewer"),
            ("otto.auditor", "auditor"),
        ):
            agency.add(username, role)
        enrol_people(agency, agency.login("gil.gallery"), lfw_images)
        yield agency


@pytest.mark.faces
@pytest.mark.parametrize("username", ["rex.reviewer", "otto.auditor"])
def test_a_candidate_photo_is_refused_to_an_unregistered_device(
    searched: Agency, lfw_images: Path, username: str
) -> None:
    agency = searched
    found = search_photo(agency, agency.login("eve.examiner"), lfw_images, "Tony_Blair", 2)
    assert found.status_code == 201, found.text
    path = f"{API}/searches/{found.json()['search_id']}/candidates/{found.json()['candidates'][0]['face_id']}"

    anywhere = agency.login(username, device=None)
    refused = agency.client.get(f"{path}/image", headers=anywhere.headers)
    assert refused.status_code == 403, refused.text
    assert error_of(refused)["rule_id"] == "device.unregistered"
    assert "face images are only shown on a device registered" in error_of(refused)["message"]
    denial = _last_denial(agency.dd)
    assert denial["attempted"] == "view_face_image"
    assert denial["decision"]["rule_id"] == "device.unregistered"  # type: ignore[index]

    at_the_lab = agency.login(username)
    shown = agency.client.get(f"{path}/image", headers=at_the_lab.headers)
    assert shown.status_code == 200, shown.text
    assert shown.content[:2] == b"\xff\xd8"  # the JPEG itself


# --- purges name their reason and authority, and stay purged --------------------------------------


@pytest.mark.faces
def test_a_purge_records_its_reason_and_the_photo_is_not_enrolled_again_without_saying_why(
    searched: Agency, lfw_images: Path
) -> None:
    agency = searched
    gil = agency.login("gil.gallery")
    person = "Colin_Powell"
    url = f"{API}/galleries/{CUSTODY}/subjects/{person}"

    missing = agency.client.delete(url, headers=gil.headers)
    assert missing.status_code == 422  # no reason, no authority: nothing purged
    why = {"reason": "court_order", "authority": "Order 2026-123"}
    purged = agency.client.delete(url, params=why, headers=gil.headers)
    assert purged.status_code == 200, purged.text
    assert (purged.json()["reason"], purged.json()["authority"]) == ("court_order", "Order 2026-123")
    entry = audit_rows(agency.dd, "purge")[-1]["details"]
    assert (entry["reason"], entry["authority"]) == ("court_order", "Order 2026-123")
    assert person not in json.dumps(entry)
    with agency.dd.store.read() as conn:
        row = conn.execute(select(purges).order_by(purges.c.id.desc())).first()
        assert row is not None
        hashes = conn.execute(select(purged_images).where(purged_images.c.purge_id == row.id)).all()
    assert row is not None
    assert (row.reason, row.authority, row.gallery) == (
        "court_order",
        "Order 2026-123",
        CUSTODY,
    )
    assert len(hashes) == 1
    assert hashes[0].re_enrolled_at is None

    again = enrol_photo(agency, gil, lfw_images, person)  # the same photo, the same folder rerun
    assert again.status_code == 409, again.text
    assert "purged" in error_of(again)["message"]
    assert "Order 2026-123" in error_of(again)["message"]

    reason = "order 2026-123 set aside on appeal (ref A-77)"
    back = enrol_photo(agency, gil, lfw_images, person, re_enrol_purged=reason)
    assert back.status_code == 201, back.text
    enrolled = audit_rows(agency.dd, "enrol")[-1]["details"]
    assert enrolled["provenance"]["re_enrolled_after_purge"] == reason
    with agency.dd.store.read() as conn:
        marked = conn.execute(select(purged_images).where(purged_images.c.id == hashes[0].id)).one()
    assert (marked.re_enrolled_by, marked.re_enrol_reason) == ("gil.gallery", reason)


def test_a_purge_without_a_known_reason_or_an_authority_is_refused(tmp_path: Path) -> None:
    dd = init_data_dir(tmp_path / "data")
    try:
        galleries.create_gallery(dd, "custody", legal_basis="statute s.1", source_description="t")
        with pytest.raises(ValidationError, match="unknown purge reason 'because'"):
            galleries.purge_gallery(dd, "custody", reason="because", authority="Order 1")
        with pytest.raises(ValidationError, match="must name its authority"):
            galleries.purge_gallery(dd, "custody", reason="expungement", authority=" \u200b ")
        assert [g.gallery.name for g in galleries.list_galleries(dd)] == ["custody"]  # nothing removed
        report = galleries.purge_expired(dd)
        assert report == galleries.PurgeReport()
        galleries.purge_gallery(dd, "custody", reason="expungement", authority="Expungement 2026-9")
        with dd.store.read() as conn:
            rows = conn.execute(select(purges.c.scope, purges.c.reason, purges.c.authority)).all()
        assert [tuple(r) for r in rows] == [("gallery", "expungement", "Expungement 2026-9")]
    finally:
        dd.close()
