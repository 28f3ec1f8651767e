"""The gallery and device pages (TestClient): a gallery administrator creates a gallery, enrols a
folder of real photos as a background job with progress and a summary of what was skipped, and
purges with a reason and a confirmation; a system administrator manages devices. Refusals: the
wrong role, another unit's gallery, a session on no device, a missing CSRF token, hostile input,
an unconfirmed purge. Every step is in the audit log."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from pages_helpers import LOCAL, csrf_of, page_agency, sign_in
from web_helpers import (
    ADMIN,
    DEVICE,
    UNIT,
    Agency,
    Clock,
    audit_rows,
    open_installation,
    photo,
    shared_pipeline,
    template,
)

from faceledger.config import WebSettings, load_settings
from faceledger.domain.models import DecodedImage, ImageAnalysis, ModelRef
from faceledger.domain.roles import Role
from faceledger.errors import NotFoundError, PermissionDeniedError, ValidationError
from faceledger.services import accounts
from faceledger.services import galleries as gallery_service
from faceledger.services.datadir import init_data_dir
from faceledger.services.devices import DEVICE_HEADER, DeviceCredential
from faceledger.web import create_app
from faceledger.web.pages import galleries as galleries_page

__all__ = ["template"]  # fixtures

GINA, OTTO, EVE, ANN = "gina.galleries", "otto.other", "eve.examiner", "ann.auditor"
OTHER_UNIT = "financial-intelligence"
GALLERY = "custody-2025"
CREATE = {
    "name": GALLERY,
    "legal_basis": "PACE 1984 s.64A",
    "source_description": "custody suite photos",
    "retention_days": "365",
}


def _people(made: Agency) -> Agency:
    made.add(GINA, Role.GALLERY_ADMIN)
    made.add(OTTO, Role.GALLERY_ADMIN, unit=OTHER_UNIT)
    made.add(EVE, Role.EXAMINER)
    made.add(ANN, Role.AUDITOR)
    made.load_example_policy()
    return made


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with page_agency(tmp_path / "data", template, web=WebSettings(enrol_root=tmp_path)) as made:
        yield _people(made)


class GatedPipeline:
    """The real pipeline, held back until the test opens the gate: the job is seen running."""

    def __init__(self) -> None:
        self.inner = shared_pipeline()
        self.gate = threading.Event()

    @property
    def model(self) -> ModelRef:
        return self.inner.model

    def analyze(self, image: DecodedImage) -> ImageAnalysis:
        assert self.gate.wait(120), "the test never let the enrolment analyse"
        return self.inner.analyze(image)


@pytest.fixture
def gated() -> GatedPipeline:
    return GatedPipeline()


@pytest.fixture
def gated_agency(tmp_path: Path, template: Path, gated: GatedPipeline) -> Iterator[Agency]:
    """As ``agency``, with the face engine analysing through ``gated``."""
    clock = Clock()
    made = open_installation(tmp_path / "data", template)
    made.close()
    web = WebSettings(enrol_root=tmp_path)
    dd = init_data_dir(tmp_path / "data", settings=made.settings.with_overrides(web=web))
    try:
        app = create_app(dd, clock=clock, analyzer=gated)
        with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as client:
            yield _people(Agency.start(client, dd, clock))
    finally:
        gated.gate.set()
        dd.close()


def _on_device(agency: Agency, username: str) -> None:
    """Sign in on the page from the workstation of the person's unit (its device credential header)."""
    credential = agency.device_of(agency.units.get(username, UNIT))
    agency.client.cookies.clear()  # a new browser session
    agency.client.headers[DEVICE_HEADER] = credential
    assert sign_in(agency, username).status_code == 303


def _off_device(agency: Agency, username: str) -> None:
    agency.client.cookies.clear()
    agency.client.headers.pop(DEVICE_HEADER, None)
    assert sign_in(agency, username).status_code == 303


def _create(agency: Agency, **fields: str) -> httpx2.Response:
    listing = agency.client.get("/galleries")
    assert listing.status_code == 200, listing.text
    return agency.client.post(
        "/galleries", data={**CREATE, **fields, "csrf_token": csrf_of(listing)}, follow_redirects=False
    )


def _gallery_objects(agency: Agency, action: str) -> list[tuple[str, str]]:
    return [(r["actor"], r["object"]) for r in audit_rows(agency.dd, action)]


def _denied_rules(agency: Agency) -> list[str]:
    return [
        r["details"].get("decision", {}).get("rule_id", "") for r in audit_rows(agency.dd, "policy_denied")
    ]


def test_a_gallery_administrator_creates_a_gallery_and_it_is_listed(agency: Agency) -> None:
    _off_device(agency, GINA)  # creating a gallery needs no device under the example policy
    created = _create(agency, source_description="<script>alert(1)</script> custody suite")
    assert created.status_code == 303, created.text
    assert created.headers["location"] == f"/galleries/{GALLERY}?created=1"
    page = agency.client.get(created.headers["location"])
    assert page.status_code == 200, page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; custody suite" in page.text
    assert "<script>alert" not in page.text
    assert "The gallery was created." in page.text
    assert "PACE 1984 s.64A" in page.text
    assert "365 days" in page.text
    assert UNIT in page.text
    listing = agency.client.get("/galleries")
    assert f'href="/galleries/{GALLERY}"' in listing.text
    assert 'href="/galleries" aria-current="page"' in listing.text
    assert (GINA, f"gallery:{GALLERY}") in _gallery_objects(agency, "gallery_created")
    # A session on no device is told why it cannot enrol, with the link to enrol the browser.
    assert 'href="/devices/enrol"' in page.text


def test_creation_is_refused_for_the_wrong_role_without_csrf_and_for_hostile_names(agency: Agency) -> None:
    _off_device(agency, EVE)
    listing = agency.client.get("/galleries")
    assert "New gallery" not in listing.text  # no form offered
    refused = agency.client.post("/galleries", data={**CREATE, "csrf_token": csrf_of(listing)})
    assert refused.status_code == 403, refused.text
    assert "<h1>Refused</h1>" in refused.text
    assert "Traceback" not in refused.text
    _off_device(agency, GINA)
    no_csrf = agency.client.post("/galleries", data=CREATE)
    assert no_csrf.status_code == 403
    assert "security token" in no_csrf.text
    for name, why in (
        ("../etc", "is not allowed"),
        ("Custody", "is not allowed"),
        ("a\u202ebc", "invisible character"),
        ("x" * 65, "at most 64"),
    ):
        bad = _create(agency, name=name)
        assert bad.status_code == 422, (name, bad.text)
        assert why in bad.text, (name, bad.text)
    bad_days = _create(agency, retention_days="ten")
    assert bad_days.status_code == 422
    assert "whole number of days" in bad_days.text
    huge = _create(agency, legal_basis="x" * 5000)
    assert huge.status_code == 422
    assert "at most 2000" in huge.text
    assert _gallery_objects(agency, "gallery_created") == []
    assert _create(agency).status_code == 303
    again = _create(agency)
    assert again.status_code == 409, again.text


def test_enrolment_and_purge_need_a_device_and_the_owning_unit(agency: Agency, tmp_path: Path) -> None:
    _off_device(agency, GINA)
    assert _create(agency).status_code == 303
    page = agency.client.get(f"/galleries/{GALLERY}")
    folder = tmp_path / "people"
    folder.mkdir()
    refused = agency.client.post(
        f"/galleries/{GALLERY}/enrolments", data={"path": str(folder), "csrf_token": csrf_of(page)}
    )
    assert refused.status_code == 403, refused.text
    assert 'class="rule-id">device.' in refused.text
    assert 'href="/devices/enrol"' in refused.text
    purge = agency.client.post(
        f"/galleries/{GALLERY}/purge",
        data={"reason": "court_order", "authority": "Order 1", "csrf_token": csrf_of(page)},
    )
    assert purge.status_code == 403
    assert 'href="/devices/enrol"' in purge.text
    assert sum(rule.startswith("device.") for rule in _denied_rules(agency)) == 2
    # A gallery administrator of another unit, on her unit's device, is refused this unit's gallery.
    _on_device(agency, OTTO)
    other = agency.client.get(f"/galleries/{GALLERY}")
    assert other.status_code == 200, other.text
    assert "The subjects are not listed for you" in other.text
    foreign = agency.client.post(
        f"/galleries/{GALLERY}/enrolments", data={"path": str(folder), "csrf_token": csrf_of(other)}
    )
    assert foreign.status_code == 403, foreign.text
    assert 'href="/devices/enrol"' not in foreign.text  # her session is on a device: that is not why
    assert any(actor == OTTO for actor, _ in _gallery_objects(agency, "policy_denied"))
    # An examiner, on a device, gets no forms and is refused a posted purge.
    _on_device(agency, EVE)
    seen = agency.client.get(f"/galleries/{GALLERY}")
    assert "Start the enrolment" not in seen.text
    assert f'action="/galleries/{GALLERY}/purge"' not in seen.text
    examiner = agency.client.post(
        f"/galleries/{GALLERY}/purge",
        data={"reason": "court_order", "authority": "Order 1", "csrf_token": csrf_of(seen)},
    )
    assert examiner.status_code == 403, examiner.text
    assert any(actor == EVE for actor, _ in _gallery_objects(agency, "policy_denied"))
    assert audit_rows(agency.dd, "purge") == []


def test_hostile_enrolment_and_purge_input_gets_a_clear_page(
    agency: Agency, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _on_device(agency, GINA)
    assert _create(agency).status_code == 303
    page = agency.client.get(f"/galleries/{GALLERY}")
    token = csrf_of(page)
    for path, why in (
        ("relative/folder", "absolute path"),
        ("/tmp/a\x00b", "invisible character"),
        ("", "absolute path"),
    ):
        bad = agency.client.post(f"/galleries/{GALLERY}/enrolments", data={"path": path, "csrf_token": token})
        assert bad.status_code == 422, (path, bad.text)
        assert why in bad.text
    bad_day = agency.client.post(
        f"/galleries/{GALLERY}/enrolments",
        data={"path": str(tmp_path), "collected_on": "yesterday", "csrf_token": token},
    )
    assert bad_day.status_code == 422
    assert "YYYY-MM-DD" in bad_day.text
    for data, why in (
        ({"reason": "because", "authority": "Order 1"}, "unknown purge reason"),
        ({"reason": "court_order", "authority": " "}, "must name its authority"),
        ({"reason": "court_order", "authority": "Order 1", "subject_id": "a\u200bb"}, "subject id"),
    ):
        bad = agency.client.post(f"/galleries/{GALLERY}/purge", data={**data, "csrf_token": token})
        assert bad.status_code == 422, (data, bad.text)
        assert why in bad.text
        assert "Traceback" not in bad.text
    outside = tmp_path_factory.mktemp("outside-the-root")  # [web] enrol_root is tmp_path
    (outside / "Eve").mkdir()
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "link").symlink_to(outside)
    for path in ("/etc", str(tmp_path / ".." / "elsewhere"), str(tmp_path / "inside" / "link")):
        bad = agency.client.post(f"/galleries/{GALLERY}/enrolments", data={"path": path, "csrf_token": token})
        assert bad.status_code == 422, (path, bad.text)
        assert "the pages enrol only from under" in bad.text
    missing = agency.client.get("/galleries/no-such-gallery")
    assert missing.status_code == 404
    job = agency.client.get(f"/galleries/{GALLERY}/enrolments/not-a-job")
    assert job.status_code == 404
    assert "no such enrolment" in job.text
    no_csrf = agency.client.post(f"/galleries/{GALLERY}/enrolments", data={"path": "/tmp"})
    assert no_csrf.status_code == 403
    assert audit_rows(agency.dd, "enrol") == []


def test_an_enrolment_that_cannot_start_says_why_on_its_page(agency: Agency, tmp_path: Path) -> None:
    _on_device(agency, GINA)
    assert _create(agency).status_code == 303
    page = agency.client.get(f"/galleries/{GALLERY}")
    missing = tmp_path / "not-there"
    started = agency.client.post(
        f"/galleries/{GALLERY}/enrolments",
        data={"path": str(missing), "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    done = _wait_done(agency, started.headers["location"] + "/progress")
    assert "The enrolment stopped" in done
    assert "is not a folder of subject folders" in done


def test_without_an_enrol_root_the_page_enrols_nothing_from_disk(tmp_path: Path, template: Path) -> None:
    with page_agency(tmp_path / "data", template) as agency:
        agency.add(GINA, Role.GALLERY_ADMIN)
        agency.load_example_policy()
        _on_device(agency, GINA)
        assert _create(agency).status_code == 303
        page = agency.client.get(f"/galleries/{GALLERY}")
        assert "Start the enrolment" not in page.text
        assert "[web] enrol_root" in page.text
        refused = agency.client.post(
            f"/galleries/{GALLERY}/enrolments", data={"path": str(tmp_path), "csrf_token": csrf_of(page)}
        )
        assert refused.status_code == 422
        assert "does not enrol from its disk" in refused.text


def test_finished_enrolment_jobs_are_forgotten_oldest_first_and_running_ones_kept() -> None:
    jobs = galleries_page.EnrolmentJobs()
    start = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)

    def job(number: int, *, done: bool) -> galleries_page.EnrolmentJob:
        made = galleries_page.EnrolmentJob(
            id=f"j{number}", gallery=GALLERY, source="/x", started_by=GINA,
            started_at=start + timedelta(minutes=number),
            error="stopped" if done else None,
        )  # fmt: skip
        jobs.add(made)
        return made

    running = job(0, done=False)
    for number in range(1, galleries_page.KEEP_FINISHED + 2):
        job(number, done=True)
    assert jobs.get("j0", GINA) is running
    with pytest.raises(NotFoundError):
        jobs.get("j1", GINA)  # the oldest finished one
    assert jobs.get("j2", GINA).id == "j2"
    with pytest.raises(NotFoundError):
        jobs.get("j2", EVE)  # another person's job is not shown
    latest = jobs.latest(GALLERY, GINA)
    assert latest is not None
    assert latest.id == f"j{galleries_page.KEEP_FINISHED + 1}"


def test_the_enrol_root_is_read_from_config_toml_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[web]\nenrol_root = "/srv/intake"\n', "utf-8")
    assert load_settings(tmp_path, env={}).web.enrol_root == Path("/srv/intake")
    chosen = load_settings(tmp_path, env={"FACELEDGER_WEB__ENROL_ROOT": "/srv/other"})
    assert chosen.web.enrol_root == Path("/srv/other")
    assert load_settings(tmp_path / "none", env={}).web.enrol_root is None


def test_an_unconfirmed_or_mistyped_purge_removes_nothing(agency: Agency) -> None:
    _on_device(agency, GINA)
    assert _create(agency).status_code == 303
    page = agency.client.get(f"/galleries/{GALLERY}")
    form = {"reason": "court_order", "authority": "Order 2026-123", "csrf_token": csrf_of(page)}
    asked = agency.client.post(f"/galleries/{GALLERY}/purge", data=form)
    assert asked.status_code == 200, asked.text
    assert "Confirm the purge" in asked.text
    assert f"&ldquo;{GALLERY}&rdquo;" in asked.text
    mistyped = agency.client.post(f"/galleries/{GALLERY}/purge", data={**form, "confirm": "custody"})
    assert mistyped.status_code == 422
    assert "nothing was purged" in mistyped.text
    assert agency.client.get(f"/galleries/{GALLERY}").status_code == 200
    assert audit_rows(agency.dd, "purge") == []
    confirmed = agency.client.post(f"/galleries/{GALLERY}/purge", data={**form, "confirm": GALLERY})
    assert confirmed.status_code == 200, confirmed.text
    assert f"The gallery {GALLERY} was purged" in confirmed.text
    assert agency.client.get(f"/galleries/{GALLERY}").status_code == 404
    (entry,) = audit_rows(agency.dd, "purge")
    assert entry["actor"] == GINA
    assert "court_order" in str(entry["details"])
    assert "Order 2026-123" in str(entry["details"])


def _wait_done(agency: Agency, progress_url: str) -> str:
    deadline = time.monotonic() + 180
    while True:
        fragment = agency.client.get(progress_url)
        assert fragment.status_code == 200, fragment.text
        if "hx-trigger" not in fragment.text:
            return fragment.text
        assert 'hx-get="' + progress_url + '"' in fragment.text
        assert time.monotonic() < deadline, f"the enrolment did not finish:\n{fragment.text}"
        time.sleep(0.5)


@pytest.mark.slow
def test_a_real_enrolment_through_the_page_then_a_purge(
    gated_agency: Agency, gated: GatedPipeline, tmp_path: Path, lfw_images: Path
) -> None:
    agency = gated_agency
    folder = tmp_path / "people"
    for name in ("Colin_Powell", "Tony_Blair"):
        (folder / name).mkdir(parents=True)
        shutil.copy(photo(lfw_images, name, 1), folder / name / f"{name}_0001.jpg")
    (folder / "Nobody").mkdir()
    (folder / "Nobody" / "broken.jpg").write_bytes(b"this is not a photo")
    _on_device(agency, GINA)
    assert _create(agency).status_code == 303
    page = agency.client.get(f"/galleries/{GALLERY}")
    started = agency.client.post(
        f"/galleries/{GALLERY}/enrolments",
        data={"path": str(folder), "collected_on": "2024-05-01", "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    job_url = started.headers["location"]
    assert re.fullmatch(rf"/galleries/{GALLERY}/enrolments/[\w-]+", job_url)
    shown = agency.client.get(job_url)
    assert shown.status_code == 200
    # Held at its first photo: the page shows the bar and polls the progress fragment.
    assert "<progress" in shown.text
    assert f'hx-get="{job_url}/progress" hx-trigger="every 1s"' in shown.text
    assert "Running: " in shown.text
    assert agency.client.get(f"/galleries/{GALLERY}").text.count("running (") == 1  # shown on return
    gated.gate.set()
    done = _wait_done(agency, job_url + "/progress")
    assert "Done: enrolled 2 of 3 image(s)" in done, done
    assert "broken.jpg" in done
    assert "unreadable" in done
    # On return, the gallery page links to the enrolment, lists the subjects and the turned-down photo.
    again = agency.client.get(f"/galleries/{GALLERY}")
    assert f'href="{job_url}"' in again.text
    assert '<td class="subject-id">Colin_Powell</td>' in again.text
    assert '<td class="subject-id">Tony_Blair</td>' in again.text
    assert "broken.jpg" in again.text
    assert "2 subjects, 2 images, 2 faces" in again.text
    provenance = again.text.split('<td class="subject-id">Colin_Powell</td>')[1].split("</tr>")[0]
    assert f"source {folder / 'Colin_Powell' / 'Colin_Powell_0001.jpg'}" in provenance
    assert "collected 2024-05-01" in provenance
    assert f"enrolled by {GINA}" in provenance
    assert "kept until 2025-05-01" in provenance  # 365 days from collection
    found = agency.client.get(f"/galleries/{GALLERY}", params={"q": "tony"})
    assert "Tony_Blair" in found.text
    assert "Colin_Powell" not in found.text
    assert "Done: enrolled 2" in agency.client.get(job_url).text  # the summary, shown again
    enrolled = [r for r in audit_rows(agency.dd, "enrol") if r["actor"] == GINA]
    assert len(enrolled) >= 1
    # Purge one subject, confirmed.
    form = {
        "subject_id": "Tony_Blair",
        "reason": "expungement",
        "authority": "Expungement 77",
        "csrf_token": csrf_of(again),
    }
    asked = agency.client.post(f"/galleries/{GALLERY}/purge", data=form)
    assert asked.status_code == 200
    assert "the subject <strong>Tony_Blair</strong>" in asked.text
    purged = agency.client.post(f"/galleries/{GALLERY}/purge", data={**form, "confirm": "Tony_Blair"})
    assert purged.status_code == 200, purged.text
    assert "1 subjects, 1 images, 1 faces" in purged.text
    after = agency.client.get(f"/galleries/{GALLERY}")
    assert "Tony_Blair</td>" not in after.text
    assert "1 subjects, 1 images, 1 faces" in after.text
    purges = audit_rows(agency.dd, "purge")
    assert [r["actor"] for r in purges] == [GINA]
    assert "Expungement 77" in str(purges[0]["details"])
    _off_device(agency, ANN)  # an auditor reads the subjects but gets no enrol or purge form
    audited = agency.client.get(f"/galleries/{GALLERY}")
    assert "Colin_Powell" in audited.text
    assert "Start the enrolment" not in audited.text
    assert agency.client.get(job_url).status_code == 404  # not her enrolment


@pytest.mark.slow
def test_a_csv_manifest_enrols_through_the_page(
    gated_agency: Agency, gated: GatedPipeline, tmp_path: Path, lfw_images: Path
) -> None:
    gated.gate.set()
    agency = gated_agency
    shutil.copy(photo(lfw_images, "Jean_Chretien", 1), tmp_path / "jc.jpg")
    manifest = tmp_path / "intake.csv"
    manifest.write_text(
        "subject_id,path,source,record_id,collected_on\n"
        "JC-1,jc.jpg,custody record 9,R-9,2024-04-01\n"
        "JC-2,gone.jpg,custody record 10,R-10,2024-04-01\n",
        encoding="utf-8",
    )
    _on_device(agency, GINA)
    assert _create(agency).status_code == 303
    page = agency.client.get(f"/galleries/{GALLERY}")
    started = agency.client.post(
        f"/galleries/{GALLERY}/enrolments",
        data={"path": str(manifest), "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    done = _wait_done(agency, started.headers["location"] + "/progress")
    assert "Done: enrolled 1 of 2 image(s)" in done, done
    assert "gone.jpg" in done
    assert "cannot read the file" in done
    shown = agency.client.get(f"/galleries/{GALLERY}")
    provenance = shown.text.split('<td class="subject-id">JC-1</td>')[1].split("</tr>")[0]
    assert "source custody record 9, record R-9; collected 2024-04-01" in provenance


def test_subject_images_are_read_a_page_at_a_time_through_the_door(agency: Agency) -> None:
    _on_device(agency, GINA)
    assert _create(agency).status_code == 303
    now = agency.clock.now

    def principal(username: str) -> accounts.Principal:
        session = agency.login(username)
        device = DeviceCredential.parse(session.device) if session.device else None
        return accounts.principal_from_token(agency.dd, session.token, device, now=now)

    gina = principal(GINA)
    assert gallery_service.subject_images_for(agency.dd, gina, GALLERY, ["nobody"], now=now) == {"nobody": []}
    too_many = [f"s{i}" for i in range(gallery_service.SUBJECT_IMAGES_MAX + 1)]
    with pytest.raises(ValidationError, match="at most 200 subjects"):
        gallery_service.subject_images_for(agency.dd, gina, GALLERY, too_many, now=now)
    with pytest.raises(PermissionDeniedError):
        gallery_service.subject_images_for(agency.dd, principal(EVE), GALLERY, ["nobody"], now=now)
    assert any(r["actor"] == EVE for r in audit_rows(agency.dd, "policy_denied"))


# --- devices -----------------------------------------------------------------------------------


def test_a_system_administrator_registers_revokes_and_issues_a_browser_code(agency: Agency) -> None:
    _off_device(agency, ADMIN)
    listing = agency.client.get("/admin/devices")
    assert listing.status_code == 200, listing.text
    assert 'href="/admin/devices" aria-current="page"' in listing.text  # the nav link
    assert f'<td class="device-id">{DEVICE}</td>' in listing.text
    token = csrf_of(listing)
    registered = agency.client.post(
        "/admin/devices",
        data={"device_id": "lab-ws-09", "name": "Lab 9", "unit": UNIT, "csrf_token": token},
    )
    assert registered.status_code == 200, registered.text
    secret = re.search(r'<p class="one-time-secret"><code>([^<]+)</code>', registered.text)
    assert secret is not None
    assert secret.group(1).startswith("lab-ws-09:")
    assert secret.group(1) not in agency.client.get("/admin/devices").text  # shown once
    code = agency.client.post("/admin/devices/lab-ws-09/browser-enrolment", data={"csrf_token": token})
    assert code.status_code == 200, code.text
    assert 'href="/devices/enrol"' in code.text
    assert re.search(r'<p class="one-time-secret"><code>[^<]{20,}</code>', code.text)
    revoked = agency.client.post(
        "/admin/devices/lab-ws-09/revoke", data={"reason": "stolen", "csrf_token": token}
    )
    assert revoked.status_code == 200, revoked.text
    assert "The device lab-ws-09 is revoked" in revoked.text
    assert "revoked" in revoked.text.split("lab-ws-09</td>")[1].split("</tr>")[0]
    twice = agency.client.post("/admin/devices/lab-ws-09/revoke", data={"reason": "x", "csrf_token": token})
    assert twice.status_code == 409
    assert "already revoked" in twice.text
    dead = agency.client.post("/admin/devices/lab-ws-09/browser-enrolment", data={"csrf_token": token})
    assert dead.status_code == 403
    assert "revoked" in dead.text
    changes = [r["details"].get("change") for r in audit_rows(agency.dd, "account_changed")]
    assert "device_revoked" in changes
    assert "browser_enrolment_issued" in changes
    assert any("lab-ws-09" in str(r["object"]) for r in audit_rows(agency.dd, "device_registered"))


def test_device_pages_refuse_others_missing_csrf_and_bad_input(agency: Agency) -> None:
    _off_device(agency, ANN)  # an auditor reads the list, without forms
    listing = agency.client.get("/admin/devices")
    assert listing.status_code == 200
    assert "Register a device" not in listing.text
    refused = agency.client.post(
        "/admin/devices", data={"device_id": "x-1", "name": "X", "unit": UNIT, "csrf_token": csrf_of(listing)}
    )
    assert refused.status_code == 403, refused.text
    _off_device(agency, EVE)
    assert agency.client.get("/admin/devices").status_code == 403
    _off_device(agency, ADMIN)
    listing = agency.client.get("/admin/devices")
    token = csrf_of(listing)
    no_csrf = agency.client.post("/admin/devices", data={"device_id": "x-1", "name": "X", "unit": UNIT})
    assert no_csrf.status_code == 403
    assert "security token" in no_csrf.text
    bad = agency.client.post(
        "/admin/devices", data={"device_id": "Bad Id!", "name": "X", "unit": UNIT, "csrf_token": token}
    )
    assert bad.status_code == 422
    assert "is not valid" in bad.text
    unknown = agency.client.post("/admin/devices/nope/revoke", data={"reason": "x", "csrf_token": token})
    assert unknown.status_code == 404
    blank = agency.client.post(f"/admin/devices/{DEVICE}/revoke", data={"reason": " ", "csrf_token": token})
    assert blank.status_code == 422, blank.text
    long = agency.client.post(
        f"/admin/devices/{DEVICE}/revoke", data={"reason": "x" * 600, "csrf_token": token}
    )
    assert long.status_code == 422
    assert "at most 500" in long.text
    listing = agency.client.get("/admin/devices")
    assert "active" in listing.text.split(f"{DEVICE}</td>")[1].split("</tr>")[0]
