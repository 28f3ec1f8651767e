"""Red team: a gallery belongs to the unit that created it.

The hole: nothing was scoped by unit, so a gallery administrator of another unit purged a
gallery the facial identification unit had built. Now a gallery records its owner unit
(the creating administrator's), and managing, enrolling into or purging it is refused to
every other unit's gallery administrators with rule ``scope.other_unit``, recorded, by the
one door that the API, the CLI and the library all go through. Reading the subject list
follows the same rule (auditors, who oversee every unit, may read it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from web_helpers import API, Agency, Session, audit_rows, error_of, running, template

from faceledger.services import galleries

__all__ = ["template"]  # fixtures

OTHER = "traffic"
GALLERY = "fiu-custody"
WHY = {"reason": "court_order", "authority": "Order 2026-77"}
NOT_AN_IMAGE = b"not an image at all"


class Units:
    def __init__(self, agency: Agency) -> None:
        self.agency = agency
        agency.load_example_policy()
        agency.add("gil.fiu", "gallery_admin")
        agency.add("tom.traffic", "gallery_admin", unit=OTHER)
        agency.add("aud.auditor", "auditor", unit="professional-standards")
        body = {"name": GALLERY, "legal_basis": "PACE s.64A", "source_description": "custody suite"}
        created = agency.client.post(f"{API}/galleries", json=body, headers=self.gil().headers)
        assert created.status_code == 201, created.text
        assert created.json()["owner_unit"] == "facial-identification"

    def gil(self) -> Session:
        return self.agency.login("gil.fiu")

    def tom(self) -> Session:
        return self.agency.login("tom.traffic")


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Iterator[Units]:
    with running(tmp_path_factory.mktemp("gallery-units") / "data", template) as agency:
        yield Units(agency)


def _enrol(agency: Agency, session: Session) -> httpx2.Response:
    form = {"subject_id": "S-1", "source": "custody record 1", "collected_on": "2024-05-01"}
    files = {"image": ("s1.jpg", NOT_AN_IMAGE, "image/jpeg")}
    return agency.client.post(
        f"{API}/galleries/{GALLERY}/images", data=form, files=files, headers=session.headers
    )


def _assert_other_unit(agency: Agency, answer: httpx2.Response, attempted: str) -> None:
    assert answer.status_code == 403, answer.text
    error = error_of(answer)
    assert error["rule_id"] == "scope.other_unit", error
    assert "belongs to unit 'facial-identification'" in error["message"]
    denial = audit_rows(agency.dd, "policy_denied")[-1]
    assert (denial["actor"], denial["details"]["attempted"]) == ("tom.traffic", attempted)
    assert denial["details"]["decision"]["rule_id"] == "scope.other_unit"


def test_another_units_gallery_admin_can_neither_purge_nor_enrol(units: Units) -> None:
    agency = units.agency
    purge = agency.client.delete(
        f"{API}/galleries/{GALLERY}", params={**WHY, "confirm": GALLERY}, headers=units.tom().headers
    )
    _assert_other_unit(agency, purge, "purge")
    subject = agency.client.delete(
        f"{API}/galleries/{GALLERY}/subjects/S-1", params=WHY, headers=units.tom().headers
    )
    _assert_other_unit(agency, subject, "purge")
    _assert_other_unit(agency, _enrol(agency, units.tom()), "enrol")
    assert galleries.get_gallery(agency.dd, GALLERY).name == GALLERY


def test_the_owner_units_gallery_admin_gets_past_the_door(units: Units) -> None:
    """Its enrolment reaches the image check (422 for a file that is no image), not a refusal."""
    answer = _enrol(units.agency, units.gil())
    assert answer.status_code == 422, answer.text
    assert error_of(answer)["code"] == "bad_image"


def test_the_subject_list_is_for_the_owner_unit_and_auditors(units: Units) -> None:
    agency = units.agency
    url = f"{API}/galleries/{GALLERY}/subjects"
    _assert_other_unit(agency, agency.client.get(url, headers=units.tom().headers), "manage_galleries")
    for username in ("gil.fiu", "aud.auditor"):
        listed = agency.client.get(url, headers=agency.login(username).headers)
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"] == []


def test_a_gallery_made_before_units_owned_galleries_stays_open_to_every_unit(units: Units) -> None:
    """Created without an owner unit (migration 0008 leaves old galleries so): no unit is refused."""
    agency = units.agency
    galleries.create_gallery(agency.dd, "legacy", legal_basis="PACE s.64A", source_description="old system")
    answer = agency.client.delete(
        f"{API}/galleries/legacy", params={**WHY, "confirm": "legacy"}, headers=units.tom().headers
    )
    assert answer.status_code == 200, answer.text
