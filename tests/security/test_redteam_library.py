"""Red team: the Python library on a live data directory acts as a person, or not at all.

The hole: ``faceledger.open(data_dir).search(...)`` on an agency's data directory returned
candidates with no person, case, purpose, policy or audit entry. Now a data directory with
accounts refuses the library without a token (and records the refusal); with a token the
library goes through the same door as the service; offline use of a data directory
without accounts is recorded.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from accounts_helpers import FAST, Org

import faceledger
from audit_records import audit_rows
from faceledger.config import Settings
from faceledger.domain.models import SearchResult
from faceledger.errors import PermissionDeniedError
from faceledger.library import SIGN_IN_REQUIRED_RULE
from faceledger.services import accounts
from faceledger.services.datadir import init_data_dir

PROBE = ("Colin_Powell", 2)
PEOPLE = ("Colin_Powell", "Tony_Blair")


def _photo(lfw_images: Path, name: str, number: int) -> Path:
    return lfw_images / name / f"{name}_{number:04d}.jpg"


def _gallery_folder(lfw_images: Path, root: Path) -> Path:
    """photos/<subject>/<photo 1> for each of PEOPLE (symlinks to the real photos)."""
    for name in PEOPLE:
        (root / name).mkdir(parents=True)
        (root / name / f"{name}_0001.jpg").symlink_to(_photo(lfw_images, name, 1))
    return root


def _data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    init_data_dir(folder, settings=Settings(accounts=FAST)).close()
    return folder


def _live(folder: Path) -> None:
    """Give the data directory accounts: the first administrator claims it."""
    dd = init_data_dir(folder, settings=Settings(accounts=FAST))
    try:
        Org(dd)
    finally:
        dd.close()


@pytest.mark.faces
def test_offline_search_on_a_data_directory_without_accounts_is_recorded(
    lfw_images: Path, tmp_path: Path
) -> None:
    folder = _data_dir(tmp_path)
    with faceledger.open(folder, workers=1) as ledger:
        ledger.create_gallery("g", legal_basis="test", source_description="LFW", required_provenance=[])
        ledger.enroll("g", _gallery_folder(lfw_images, tmp_path / "photos"), collected_on=date(2024, 1, 1))
        result = ledger.search(_photo(lfw_images, *PROBE), ["g"])
        assert isinstance(result, SearchResult)
        assert result.faces[0].subjects[0].subject_id == "Colin_Powell"
        recorded = audit_rows(ledger.data_dir, "offline_use")
    assert len(recorded) == 1
    entry = recorded[0]
    assert entry["actor"] == "library"
    assert entry["details"]["operation"] == "search"
    assert entry["details"]["galleries"] == ["g"]
    assert entry["details"]["candidates"] >= 1


def test_a_data_directory_with_accounts_refuses_the_library_without_a_token(tmp_path: Path) -> None:
    folder = _data_dir(tmp_path)
    _live(folder)
    with faceledger.open(folder) as ledger:
        before = len(audit_rows(ledger.data_dir, "policy_denied"))
        for attempt in (
            lambda: ledger.search(b"not even an image", ["g"]),
            lambda: ledger.verify(b"a", b"b"),
            lambda: ledger.create_gallery("g", legal_basis="x", source_description="y"),
            lambda: ledger.enroll("g", tmp_path),
            lambda: ledger.purge_gallery("g"),
            lambda: ledger.galleries(),
        ):
            with pytest.raises(PermissionDeniedError, match=re.escape(SIGN_IN_REQUIRED_RULE)):
                attempt()
        refusals = audit_rows(ledger.data_dir, "policy_denied")[before:]
    assert len(refusals) == 6
    assert {r["actor"] for r in refusals} == {"library"}
    assert all(r["details"]["decision"]["rule_id"] == SIGN_IN_REQUIRED_RULE for r in refusals)


def test_with_a_token_the_library_acts_as_that_person_through_the_one_door(tmp_path: Path) -> None:
    folder = _data_dir(tmp_path)
    now = datetime.now(UTC)
    dd = init_data_dir(folder, settings=Settings(accounts=FAST))
    try:
        org = Org(dd, now=now)
        org.add("eve.examiner", "examiner", now=now)
        workstation = org.workstation()
        session = org.sign_in("eve.examiner", now=now, device=workstation)
        _, token = accounts.create_token(
            dd, session, name="notebook", scopes=["examiner"], expires_at=now + timedelta(days=1), now=now
        )
    finally:
        dd.close()
    with faceledger.open(folder, token=token, device=workstation) as ledger:
        principal = ledger.principal()
        assert principal is not None
        assert principal.actor.username == "eve.examiner"
        # No policy is loaded yet: casework is refused by the policy rule, as over the API.
        with pytest.raises(PermissionDeniedError, match=re.escape("rule policy.none")):
            ledger.search(
                b"probe bytes", ["g"], case_number="2025/CID/004211", purpose="criminal_investigation"
            )
        # Gallery work is a gallery administrator's, whoever asks through the library.
        with pytest.raises(PermissionDeniedError, match=re.escape("rule role.not_permitted")):
            ledger.create_gallery("g", legal_basis="x", source_description="y")
        refusals = audit_rows(ledger.data_dir, "policy_denied")
    assert [r["actor"] for r in refusals[-2:]] == ["eve.examiner", "eve.examiner"]
    assert [r["details"]["decision"]["rule_id"] for r in refusals[-2:]] == [
        "policy.none",
        "role.not_permitted",
    ]
