"""The search pages (TestClient at http://localhost): the form, its live case check, the refusals,
and real searches on LFW photos shown as the candidate grid (paged), another face of a two-person
photo searched, a probe below the quality floor, with what the audit log recorded.

A page session is bound to the registered device as a browser's is: the administrator's one-time
code, then enrolment and confirmation with a software authenticator (test_web_devices.py).
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from pages_helpers import csrf_of, page_agency, sign_in
from PIL import Image
from soft_authenticator import SoftAuthenticator
from web_helpers import (
    API,
    CASE,
    CUSTODY,
    DEVICE,
    PAROLE,
    PURPOSE,
    Agency,
    Clock,
    audit_rows,
    enrol_people,
    open_installation,
    photo,
    shared_pipeline,
    template,
)

from faceledger.adapters.policy_file import example_policy_text
from faceledger.domain.roles import Role
from faceledger.services import galleries
from faceledger.web import create_app
from faceledger.web.pages import search as search_pages

__all__ = ["template"]  # fixtures

EVE, GINA = "eve.examiner", "gina.galleries"
LOCALHOST = "http://localhost"


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with page_agency(tmp_path / "data", template, base_url=LOCALHOST) as made:
        made.add(EVE, Role.EXAMINER)
        made.add(GINA, Role.GALLERY_ADMIN)
        made.load_example_policy()
        yield made


def _challenge(options: dict[str, object]) -> bytes:
    text = str(options["challenge"])
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def bind_device(agency: Agency, username: str) -> None:
    """Sign ``username`` in on the page and bind the session to the registered device (WebAuthn)."""
    admin = agency.login("ada.admin", device=None)
    issued = agency.client.post(f"{API}/devices/{DEVICE}/browser-enrolments", headers=admin.headers)
    assert issued.status_code == 201, issued.text
    assert sign_in(agency, username).status_code == 303
    key = SoftAuthenticator(origin=LOCALHOST)
    headers = {"X-CSRF-Token": csrf_of(agency.client.get("/devices/enrol"))}
    options = agency.client.post(
        "/devices/enrol/options", data={"code": issued.json()["code"]}, headers=headers
    )
    assert options.status_code == 200, options.text
    finished = agency.client.post(
        "/devices/enrol/finish", content=key.create(_challenge(options.json())), headers=headers
    )
    assert finished.status_code == 200, finished.text
    headers = {"X-CSRF-Token": csrf_of(agency.client.get("/"))}
    options = agency.client.post("/devices/confirm/options", headers=headers)
    assert options.status_code == 200, options.text
    confirmed = agency.client.post(
        "/devices/confirm/finish", content=key.get(_challenge(options.json())), headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    assert f'<dd class="device">{DEVICE}</dd>' in agency.client.get("/").text


def post_search(
    agency: Agency, data: Mapping[str, object], probe: bytes = b"never read", *, csrf: bool = True
) -> httpx2.Response:
    fields = dict(data)
    if csrf:
        fields["csrf_token"] = csrf_of(agency.client.get("/search"))
    return agency.client.post(
        "/search", data=fields, files={"probe": ("p.jpg", probe, "image/jpeg")}, follow_redirects=False
    )


def words(response: httpx2.Response) -> str:
    return " ".join(response.text.split())


def test_the_form_offers_what_the_policy_allows(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    page = agency.client.get("/search")
    assert page.status_code == 200, page.text
    text = words(page)
    assert 'href="/search" aria-current="page">New search</a>' in text
    assert "for example <code>2025/CID/004211</code>" in text
    assert 'hx-get="/search/case-check"' in text
    assert "Identify a suspect, victim or witness of a specific recorded crime." in text
    assert 'value="missing_person_at_risk" required data-galleries="custody_arrest_photos" ' in text
    assert 'data-justification="required"' in text
    assert f'value="{PAROLE}"' in text
    assert f'value="{CUSTODY}"' in text
    assert "DSA-2024-017: Neighbouring County Police" in text
    assert 'accept="image/*" capture="environment"' in text
    assert 'src="/static/faceledger/search.js"' in text
    assert "<script>" not in text  # the CSP allows no inline script
    # Not on a registered device: the page says so before anything is tried, and links to enrolment.
    assert "device.unregistered" in text
    assert 'href="/devices/enrol"' in text
    # A gallery administrator may not search: no link in the navigation.
    agency.client.cookies.clear()
    assert sign_in(agency, GINA).status_code == 303
    assert "New search" not in agency.client.get("/").text


def test_the_case_number_is_checked_as_it_is_typed(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    good = agency.client.get("/search/case-check", params={"case_number": CASE})
    assert good.status_code == 200
    assert "In the agency's format." in good.text
    for bad in ("2025-CID-1", "2025/CID/004211\x1b[31m", "２０２５/CID/004211"):
        answer = agency.client.get("/search/case-check", params={"case_number": bad})
        assert answer.status_code == 200
        assert "is not in the agency&#39;s format" in answer.text, answer.text
        assert "2025/CID/004211" in answer.text  # the example
        assert "\x1b" not in answer.text
    empty = agency.client.get("/search/case-check", params={"case_number": " "})
    assert "Type the case number, for example 2025/CID/004211." in empty.text
    assert agency.client.get("/search/case-check", params={"case_number": "9" * 201}).status_code == 422
    agency.client.cookies.clear()
    assert agency.client.get("/search/case-check", params={"case_number": CASE}).status_code == 401


def test_a_search_off_a_registered_device_is_refused_with_its_rule_and_a_link(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    answer = post_search(agency, {"case_number": CASE, "purpose": PURPOSE, "galleries": CUSTODY})
    assert answer.status_code == 403, answer.text
    text = words(answer)
    assert '<code class="rule-id">device.unregistered</code>' in text
    assert '<dd class="policy-version-refused">example-2025.1</dd>' in text
    assert "only accepted from a device registered to" in text
    assert 'href="/devices/enrol"' in text
    denied = audit_rows(agency.dd, "policy_denied")[-1]
    assert denied["actor"] == EVE
    assert denied["details"]["decision"]["rule_id"] == "device.unregistered"


def test_refusals_on_a_device_name_the_rule_and_the_reason(agency: Agency) -> None:
    bind_device(agency, EVE)
    prohibited = post_search(
        agency, {"case_number": CASE, "purpose": "civil_immigration_enforcement", "galleries": CUSTODY}
    )
    assert prohibited.status_code == 403
    assert '<code class="rule-id">purpose.prohibited</code>' in prohibited.text
    assert "prohibited" in words(prohibited)
    assert 'href="/devices/enrol"' not in prohibited.text
    malformed = post_search(agency, {"case_number": "CASE 7", "purpose": PURPOSE, "galleries": CUSTODY})
    assert malformed.status_code == 403
    assert '<code class="rule-id">case.malformed</code>' in malformed.text
    assert "for example &#39;2025/CID/004211&#39;" in malformed.text
    no_justification = post_search(
        agency, {"case_number": CASE, "purpose": "missing_person_at_risk", "galleries": CUSTODY}
    )
    assert '<code class="rule-id">justification.missing</code>' in no_justification.text
    wrong_gallery = post_search(
        agency, {"case_number": CASE, "purpose": "deceased_or_incapacitated", "galleries": PAROLE}
    )
    assert '<code class="rule-id">gallery.not_for_purpose</code>' in wrong_gallery.text
    rules = [row["details"]["decision"]["rule_id"] for row in audit_rows(agency.dd, "policy_denied")]
    assert rules[-4:] == [
        "purpose.prohibited",
        "case.malformed",
        "justification.missing",
        "gallery.not_for_purpose",
    ]


def test_hostile_input_gets_a_page_with_the_reason(agency: Agency) -> None:
    bind_device(agency, EVE)
    form = {"case_number": CASE, "purpose": PURPOSE, "galleries": CUSTODY}
    no_token = post_search(agency, form, csrf=False)
    assert no_token.status_code == 403
    assert "security token" in no_token.text
    for edits, reason in (
        ("[{", "edits: not valid JSON"),
        ('[{"kind": "melt", "params": {}}]', "melt"),
        ("[" * 5000 + "]" * 5000, "edits"),
    ):
        answer = post_search(agency, {**form, "edits": edits})
        assert answer.status_code == 422, answer.text[:500]
        assert reason in answer.text
        assert "Traceback" not in answer.text
    for field, value in (("case_number", "9" * 201), ("justification", "x" * 20_001)):
        answer = post_search(agency, {**form, field: value})
        assert answer.status_code == 422
        assert field in answer.text
    control = post_search(agency, {**form, "case_number": "2025/CID/\x00004211"})
    assert control.status_code in (403, 422)
    assert "\x00" not in control.text
    no_file = agency.client.post(
        "/search", data={**form, "csrf_token": csrf_of(agency.client.get("/search"))}, follow_redirects=False
    )
    assert no_file.status_code == 422
    assert "choose the probe photo" in no_file.text
    not_an_image = post_search(agency, form, b"not an image at all")
    assert not_an_image.status_code == 422
    assert "Traceback" not in not_an_image.text
    assert agency.client.get("/searches/0").status_code == 422
    assert agency.client.get("/searches/99999").status_code == 404


# --- a real search on LFW photos ---------------------------------------------------------------


@contextmanager
def _faces_agency(folder: Path, template: Path, lfw_images: Path) -> Iterator[Agency]:
    clock = Clock()
    dd = open_installation(folder, template)
    try:
        app = create_app(dd, analyzer=shared_pipeline(), clock=clock)
        with TestClient(app, base_url=LOCALHOST, raise_server_exceptions=False) as client:
            agency = Agency.start(client, dd, clock)
            agency.load_example_policy()
            for name in (CUSTODY, PAROLE):
                galleries.create_gallery(dd, name, legal_basis="PACE s.64A", source_description="LFW")
            agency.add("gil.galleries", Role.GALLERY_ADMIN)
            agency.add(EVE, Role.EXAMINER)
            enrol_people(agency, agency.login("gil.galleries"), lfw_images)
            yield agency
    finally:
        dd.close()


@pytest.mark.faces
def test_a_real_search_shows_the_candidate_grid_and_is_recorded(
    tmp_path: Path, template: Path, lfw_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_pages, "PER_PAGE", 2)  # three people enrolled: two pages of candidates
    with _faces_agency(tmp_path / "data", template, lfw_images) as agency:
        bind_device(agency, EVE)
        probe = photo(lfw_images, "Tony_Blair", 2).read_bytes()
        brighter = {"kind": "brightness", "params": {"factor": 1.1}}
        edits = json.dumps([brighter, {"kind": "contrast", "params": {"factor": 1.2}}])
        form = {
            "case_number": CASE,
            "purpose": PURPOSE,
            "galleries": [CUSTODY],
            "justification": "robbery at the post office",
            "edits": edits,
        }
        answer = post_search(agency, form, probe)
        assert answer.status_code == 303, answer.text[:2000]
        location = answer.headers["location"]
        found = re.fullmatch(r"/searches/(\d+)", location)
        assert found
        search_id = found.group(1)
        shown_before = len(audit_rows(agency.dd, "candidates_shown"))
        page = agency.client.get(location)
        assert page.status_code == 200, page.text[:2000]
        text = words(page)
        assert "A possible match is an investigative lead only." in text  # the policy's lead notice
        assert "<h3>Rank 1: Tony_Blair</h3>" in text
        assert "custody record Tony_Blair" in text  # provenance of the gallery image
        assert "comparisons of two different people score this high" in text
        assert "brightness x1.1" in text
        assert "contrast x1.2" in text
        assert "data-box=" in text
        assert "quality" in text
        assert f'src="/searches/{search_id}/probe?face=true"' in text
        rank1 = re.search(rf'src="(/searches/{search_id}/candidates/(\d+)/image)"', page.text)
        assert rank1
        image = agency.client.get(rank1.group(1))
        assert image.status_code == 200
        assert image.headers["cache-control"] == "no-store"
        assert image.content == photo(lfw_images, "Tony_Blair", 1).read_bytes()
        probe_png = agency.client.get(f"/searches/{search_id}/probe?face=true")
        assert probe_png.status_code == 200
        assert probe_png.headers["content-type"] == "image/png"
        assert probe_png.headers["cache-control"] == "no-store"
        # The audit log: the search (with its edit), the candidates shown on reading, each viewed.
        search_row = audit_rows(agency.dd, "search")[-1]
        assert search_row["actor"] == EVE
        assert search_row["object"] == f"search:{search_id}"
        assert search_row["details"]["device_id"] == DEVICE
        assert [e["kind"] for e in search_row["details"]["probe_edits"]] == ["brightness", "contrast"]
        assert len(audit_rows(agency.dd, "candidates_shown")) == shown_before + 1
        viewed = [
            r for r in audit_rows(agency.dd, "candidate_viewed") if r["details"]["search_id"] == search_id
        ]
        # Listing the grid records no view; fetching the rank-1 photo once recorded exactly one.
        assert [r["details"]["face_id"] for r in viewed] == [int(rank1.group(2))]
        # Paging: two candidates a page; the last page holds the third; out-of-range pages are clamped.
        assert text.count('<li class="candidate') == 2
        assert "page 1 of 2" in text
        assert f'href="/searches/{search_id}?page=2" rel="next"' in text
        second = words(agency.client.get(f"{location}?page=2"))
        assert second.count('<li class="candidate') == 1
        assert "<h3>Rank 3: " in second
        assert f'href="/searches/{search_id}?page=1" rel="prev"' in second
        assert "Rank 3: " in agency.client.get(f"{location}?page=9999").text
        assert "A possible match is an investigative lead only." in second  # on every result page
        assert agency.client.get(f"{location}?page=x").status_code == 422
        # Another person's probe off a device is refused, and says why.
        agency.client.cookies.clear()
        assert sign_in(agency, EVE).status_code == 303
        refused = agency.client.get(f"/searches/{search_id}/probe")
        assert refused.status_code == 403
        assert "device.unregistered" in refused.text


@pytest.mark.faces
def test_another_face_of_the_probe_is_searched_as_a_new_recorded_search(
    tmp_path: Path, template: Path, lfw_images: Path
) -> None:
    # Two people in one photo: Tony Blair large on the left, Colin Powell smaller on the right.
    tony = Image.open(photo(lfw_images, "Tony_Blair", 2)).convert("RGB")
    colin = Image.open(photo(lfw_images, "Colin_Powell", 2)).convert("RGB").resize((200, 200))
    both = Image.new("RGB", (460, 250), (128, 128, 128))
    both.paste(tony, (0, 0))
    both.paste(colin, (255, 25))
    buffer = io.BytesIO()
    both.save(buffer, format="PNG")
    with _faces_agency(tmp_path / "data", template, lfw_images) as agency:
        bind_device(agency, EVE)
        form = {"case_number": CASE, "purpose": PURPOSE, "galleries": [CUSTODY]}
        first = post_search(agency, form, buffer.getvalue())
        assert first.status_code == 303, first.text[:2000]
        results = agency.client.get(first.headers["location"])
        assert "<h3>Rank 1: Tony_Blair</h3>" in results.text
        faces_link = first.headers["location"] + "/faces"
        assert f'href="{faces_link}"' in results.text
        faces = agency.client.get(faces_link)
        assert faces.status_code == 200, faces.text[:2000]
        assert faces.text.count('class="face-box') == 2
        assert "Face 1 (searched): quality" in words(faces)
        target = re.search(r'action="(/searches/\d+/faces/\d+)"', faces.text)
        assert target
        again = agency.client.post(
            target.group(1), data={"csrf_token": csrf_of(faces)}, follow_redirects=False
        )
        assert again.status_code == 303, again.text[:2000]
        assert again.headers["location"] != first.headers["location"]
        second = agency.client.get(again.headers["location"])
        assert "<h3>Rank 1: Colin_Powell</h3>" in second.text
        assert "crop to (" in second.text
        made = audit_rows(agency.dd, "search")
        assert made[-1]["details"]["probe_sha256"] == made[-2]["details"]["probe_sha256"]
        assert [e["kind"] for e in made[-1]["details"]["probe_edits"]] == ["crop"]
        assert made[-1]["details"]["searched_sha256"] not in (None, made[-1]["details"]["probe_sha256"])
        no_token = agency.client.post(target.group(1), follow_redirects=False)
        assert no_token.status_code == 403
        missing = agency.client.post(
            first.headers["location"] + "/faces/99",
            data={"csrf_token": csrf_of(faces)},
            follow_redirects=False,
        )
        assert missing.status_code == 404
        assert "has no face 99" in missing.text


@pytest.mark.faces
def test_a_probe_below_the_quality_floor_says_why(tmp_path: Path, template: Path, lfw_images: Path) -> None:
    with _faces_agency(tmp_path / "data", template, lfw_images) as agency:
        strict = example_policy_text().replace('version = "example-2025.1"', 'version = "strict-1"')
        strict = strict.replace("probe_quality_floor = 30.0", "probe_quality_floor = 100.0")
        loaded = agency.client.put(f"{API}/policy", json={"text": strict}, headers=agency.admin().headers)
        assert loaded.status_code == 200
        bind_device(agency, EVE)
        form = {"case_number": CASE, "purpose": PURPOSE, "galleries": [CUSTODY]}
        answer = post_search(agency, form, photo(lfw_images, "Tony_Blair", 2).read_bytes())
        assert answer.status_code == 403
        text = words(answer)
        assert '<code class="rule-id">probe.quality_below_floor</code>' in text
        assert '<dd class="policy-version-refused">strict-1</dd>' in text
        assert "below the policy&#39;s floor of 100.0" in text
        assert re.search(r"below the policy&#39;s floor of 100\.0: lowered most by \w+ \(factor", text), text
