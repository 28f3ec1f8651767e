"""A new agency's first day, end to end, against a real ``faceledger serve`` on the real clock.

Everything goes over HTTP to the installed ``faceledger`` command, as people would use it:
the first administrator is made with the printed bootstrap secret; every person signs in
with a password and a TOTP code computed by ``pyotp`` as an authenticator app would; devices
are registered and sent; the shipped example policy decides; real LFW photos are enrolled
and searched; a lead goes through blind peer review to a supervisor; a trial account ends;
an outside auditor checks the exported log with the standalone verifier (a copy of one file,
run by itself) and sees an altered copy fail; a purged person can no longer be found.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pyotp
import pytest
from served import free_port, read_until, serving

pytestmark = [pytest.mark.slow, pytest.mark.faces]

FACELEDGER = (str(Path(sys.executable).with_name("faceledger")),)
PASSWORD = "a long enough passphrase"
ORG = "Example Constabulary"
UNIT = "facial-identification"
GALLERY = "custody_arrest_photos"
CASE = "2026/CID/000017"
PEOPLE = ("Colin_Powell", "Tony_Blair", "Jean_Chretien", "George_W_Bush")
VOUCHER = "una.unitlead"
VERIFIER = Path(__file__).resolve().parents[2] / "src" / "faceledger" / "audit" / "verify.py"


@dataclass
class Agency:
    """A client of the running service: its base URL, the device credential, each person's TOTP seed."""

    base: str
    data_dir: Path
    device: str = ""
    seeds: dict[str, str | None] = field(default_factory=dict)
    voucher: str | None = None  # the session of the unit's first supervisor

    def call(self, method: str, path: str, token: str | None = None, device: bool = True, **kw: Any) -> Any:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if device and self.device:
            headers["X-Faceledger-Device"] = self.device
        return httpx2.request(method, f"{self.base}{path}", headers=headers, timeout=120, **kw)

    def login(self, username: str, *, device: bool = True) -> str:
        seed = self.seeds[username]  # None: the account's roles need no second factor
        code = None if seed is None else pyotp.TOTP(pyotp.parse_uri(seed).secret).now()
        answer = self.call(
            "POST",
            "/auth/login",
            device=device,
            json={"username": username, "password": PASSWORD, "totp": code},
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        return token

    def add(self, admin: str, username: str, *roles: str, **extra: Any) -> None:
        """The administrator creates the account, its owner activates it, a supervisor vouches."""
        if self.voucher is None:
            self.voucher = "(first)"
            self.add(admin, VOUCHER, "supervisor")
        body = {
            "username": username,
            "display_name": username.title(),
            "organisation": ORG,
            "unit": UNIT,
            "roles": list(roles),
            **extra,
        }
        answer = self.call("POST", "/users", admin, device=False, json=body)
        assert answer.status_code == 201, answer.text
        assert "totp_uri" not in answer.text  # the administrator never sees the second factor
        activation = {"username": username, "code": answer.json()["activation_code"], "password": PASSWORD}
        activated = self.call("POST", "/auth/activate", device=False, json=activation)
        assert activated.status_code == 200, activated.text
        self.seeds[username] = activated.json()["totp_uri"]
        if username == VOUCHER:
            # The unit's first supervisor: vouched for by the installer, on the server's command line.
            installer = [
                *FACELEDGER,
                "user",
                "vouch",
                VOUCHER,
                "--installer",
                "--data-dir",
                str(self.data_dir),
            ]
            subprocess.run(installer, check=True, capture_output=True, text=True, timeout=120)
            self.voucher = self.login(VOUCHER, device=False)
            return
        vouched = self.call("POST", f"/users/{username}/vouch", self.voucher, device=False)
        assert vouched.status_code == 200, vouched.text


def search(agency: Agency, token: str, probe: Path, *, device: bool = True, **form: str) -> Any:
    fields = {"case_number": CASE, "purpose": "criminal_investigation", "galleries": GALLERY} | form
    files = {"probe": (probe.name, probe.read_bytes(), "image/jpeg")}
    return agency.call("POST", "/searches", token, device=device, data=fields, files=files)


def refusal(answer: Any, status: int) -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["message"], error
    rule: str = error.get("rule_id") or error["code"]
    return rule


def verify_copy(tmp_path: Path, export: Path, key: Path) -> subprocess.CompletedProcess[str]:
    """The auditor's check: the verifier alone, copied out of the project, run with -I (isolated)."""
    alone = tmp_path / "auditor" / "verify.py"
    alone.parent.mkdir(exist_ok=True)
    shutil.copyfile(VERIFIER, alone)
    return subprocess.run(
        [sys.executable, "-I", str(alone), str(export), "--key", str(key)],
        capture_output=True,
        text=True,
        cwd=alone.parent,
        check=False,
    )


def test_a_new_agency_from_first_start_to_an_audited_lead(tmp_path: Path, lfw_images: Path) -> None:
    if not Path(FACELEDGER[0]).exists():
        pytest.skip(f"the faceledger command is not installed beside {sys.executable}")
    data_dir, port = tmp_path / "data", free_port()
    photo = {name: lfw_images / name / f"{name}_0001.jpg" for name in PEOPLE}
    with serving(FACELEDGER, data_dir, port) as server:
        secret, _ = read_until(server, r"flb_[A-Za-z0-9_-]+")
        read_until(server, r"Uvicorn running on")
        agency = Agency(f"http://127.0.0.1:{port}/api/v1", data_dir)

        # The system administrator: bootstrap, a device, the policy, the people.
        claim = {"secret": secret.group(0), "username": "ada.admin", "password": PASSWORD}
        made = agency.call("POST", "/auth/bootstrap", json=claim | {"organisation": ORG, "unit": "IT"})
        assert made.status_code == 201, made.text
        agency.seeds["ada.admin"] = made.json()["totp_uri"]
        admin = agency.login("ada.admin")
        device = agency.call(
            "POST", "/devices", admin, json={"device_id": "fiu-ws-03", "name": "FIU 3", "unit": UNIT}
        )
        assert device.status_code == 201, device.text
        agency.device = device.json()["credential"]
        # The administrator's session was opened before any device existed: it stays device-less.
        assert agency.call("POST", "/policy/example", admin, device=False).status_code == 200
        soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        for username, roles, extra in (
            ("gil.galleries", ("gallery_admin",), {}),
            ("sam.examiner", ("examiner",), {}),
            ("vic.reviewer", ("reviewer",), {}),
            ("sue.supervisor", ("supervisor",), {}),
            ("aud.auditor", ("auditor",), {}),
            ("tim.trial", ("examiner",), {"trial": True, "expires_at": soon}),
        ):
            agency.add(admin, username, *roles, **extra)

        # The gallery administrator: a controlled gallery, photos with their provenance.
        gil = agency.login("gil.galleries")
        created = agency.call(
            "POST",
            "/galleries",
            gil,
            json={
                "name": GALLERY,
                "legal_basis": "PACE s.64A: custody photographs",
                "source_description": "custody imaging system",
                "retention_days": 2190,
            },
        )
        assert created.status_code == 201, created.text
        for name in PEOPLE:
            form = {"subject_id": name, "source": f"custody record {name}", "collected_on": "2024-05-01"}
            files = {"image": (f"{name}.jpg", photo[name].read_bytes(), "image/jpeg")}
            enrolled = agency.call("POST", f"/galleries/{GALLERY}/images", gil, data=form, files=files)
            assert enrolled.status_code == 201, enrolled.text
        no_provenance = agency.call(
            "POST",
            f"/galleries/{GALLERY}/images",
            gil,
            data={"subject_id": "x"},
            files={"image": ("x.jpg", photo["Tony_Blair"].read_bytes(), "image/jpeg")},
        )
        assert no_provenance.status_code == 422, no_provenance.text

        # The examiner: refusals named by rule, then a lead.
        sam = agency.login("sam.examiner")
        probe = lfw_images / "Tony_Blair" / "Tony_Blair_0002.jpg"
        assert refusal(search(agency, sam, probe, purpose="civil_immigration_enforcement"), 403).startswith(
            "purpose"
        )
        assert refusal(search(agency, sam, probe, case_number=""), 403) == "case.missing"
        assert refusal(search(agency, sam, probe, device=False), 403) == "device.unregistered"
        found = search(agency, sam, probe, justification="robbery at the post office")
        assert found.status_code == 201, found.text
        result = found.json()
        assert result["candidates"][0]["subject_id"] == "Tony_Blair"
        assert result["candidates"][0]["above_threshold"] is True
        assert "lead" in json.dumps(result).lower()
        sid = result["search_id"]

        # Review: examiner -> blind peer -> supervisor.
        findings = [
            {
                "face_id": c["face_id"],
                "outcome": "possible_match" if rank == 0 else "no_match",
                "notes": "ears",
            }
            for rank, c in enumerate(result["candidates"])
        ]
        examined = agency.call("POST", f"/reviews/{sid}/examination", sam, json={"findings": findings})
        assert examined.json()["state"] == "awaiting_peer_assessment", examined.text
        vic = agency.login("vic.reviewer")
        blind = agency.call("GET", f"/reviews/{sid}/peer", vic).json()
        assert blind["blind"] is True
        assert blind["examiner_findings"] == []
        assert (
            agency.call("POST", f"/reviews/{sid}/peer", vic, json={"findings": findings}).status_code == 200
        )
        agreed = agency.call("POST", f"/reviews/{sid}/verdict", vic, json={"verdict": "agree"})
        assert agreed.json()["state"] == "awaiting_approval", agreed.text
        sue = agency.login("sue.supervisor")
        approved = agency.call("POST", f"/reviews/{sid}/approval", sue, json={"notes": "pursue"})
        assert approved.json()["state"] == "approved", approved.text
        history = agency.call("GET", f"/cases/{CASE}", sue)
        assert history.status_code == 200, history.text
        assert history.json()["searches"] == [sid]
        events = [entry["kind"] for entry in history.json()["history"]]
        assert "decision" in events, events  # the refused searches carried the case number too

        # A trial account works until its expiry, then refuses everything.
        tim = agency.login("tim.trial")
        assert search(agency, tim, probe).status_code == 201
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        ended = agency.call("PUT", "/users/tim.trial/expiry", admin, device=False, json={"expires_at": past})
        assert ended.status_code == 200, ended.text
        assert refusal(search(agency, tim, probe), 401) == "unauthenticated"

        # Purge really removes: the person is no longer a candidate.
        purged = agency.call(
            "DELETE",
            f"/galleries/{GALLERY}/subjects/Tony_Blair",
            gil,
            params={"reason": "expungement", "authority": "Expungement order 2026-77"},
        )
        assert purged.status_code == 200, purged.text
        assert purged.json()["faces"] == 1
        assert purged.json()["vectors"] == 1
        again = search(agency, sam, probe)
        assert again.status_code == 201, again.text
        assert "Tony_Blair" not in {c["subject_id"] for c in again.json()["candidates"]}

        # The auditor: the oversight report, an export, and the public key to check it with.
        aud = agency.login("aud.auditor")
        assert refusal(search(agency, aud, probe), 403)  # an auditor never searches
        report = agency.call("GET", "/audit/report", aud).json()
        assert report["searches"] >= 3
        exported = agency.call("POST", "/audit/export", aud)
        assert exported.status_code == 200, exported.text
        key = agency.call("GET", "/audit/public-key").json()["pem"]

    export, pem = tmp_path / "log.json", tmp_path / "audit-public.pem"
    export.write_bytes(exported.content)
    pem.write_text(key, encoding="ascii")
    checked = verify_copy(tmp_path, export, pem)
    assert checked.returncode == 0, checked.stderr

    log = json.loads(exported.content)
    entries = [signed["entry"] for signed in log["entries"]]
    actions = [entry["action"] for entry in entries]
    for action in ("policy_denied", "search", "review", "purge"):
        assert action in actions, sorted(set(actions))
    denied = next(e for e in entries if e["action"] == "policy_denied")
    denied["actor"] = "someone.else"  # rewrite who was refused
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(log), encoding="utf-8")
    caught = verify_copy(tmp_path, altered, pem)
    assert caught.returncode == 1, caught.stdout
    assert f"entry {denied['seq']} was altered" in caught.stderr, caught.stderr
