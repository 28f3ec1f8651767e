"""Red team: a daily limit holds across processes: several CLI searches and the server at once.

The hole: four parallel CLI searches all passed a daily limit that had two left, because
the decision was read in one transaction and the search written in another. Here an
examiner with a limit of 3 starts four ``faceledger search`` processes and two searches over
the HTTP API of a running ``faceledger serve``, all at once, on one SQLite data directory:
exactly three get through, and every other one is refused with ``limit.daily``. (With the
count of the old code, which saw only finished searches and not the reservations made by the
decisions, all six get through.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from served import free_port, read_until, serving
from signed_in_unit import ADMIN, CASE, GALLERY, PURPOSE, SignedInUnit, build_unit

from faceledger.adapters.policy_file import example_policy_text
from faceledger.cli import accounts as accounts_cli
from faceledger.services.devices import DEVICE_HEADER

pytestmark = [pytest.mark.slow, pytest.mark.faces]

EVE = "eve.examiner"
LIMIT = 3
FACELEDGER = str(Path(sys.executable).with_name("faceledger"))
LAUNCH = (sys.executable, "-c", "from faceledger.cli.main import app; app()")


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedInUnit]:
    root = tmp_path_factory.mktemp("limit-processes")
    built = build_unit(root, [("gina.gallery", "gallery_admin"), (EVE, "examiner")], example_policy=False)
    policy = root / "policy.toml"
    text = example_policy_text().replace(
        "[search.daily_limit_overrides]\n", f'[search.daily_limit_overrides]\n"{EVE}" = {LIMIT}\n', 1
    )
    policy.write_text(text, encoding="utf-8")
    built.run(ADMIN, "policy", "load", str(policy))
    built.run(
        "gina.gallery",
        "gallery",
        "create",
        GALLERY,
        "--legal-basis",
        "PACE s.64A",
        "--source-description",
        "x",
    )
    try:
        yield built
    finally:
        built.close()


def _cli_search(unit: SignedInUnit, probe: Path) -> tuple[bool, str]:
    env = {**unit.env, "FACELEDGER_CONFIG_DIR": str(unit.folders[EVE]), "PATH": str(Path(FACELEDGER).parent)}
    argv = [FACELEDGER, "search", str(probe), "-g", GALLERY, "--case", CASE, "--purpose", PURPOSE, "--json"]
    done = subprocess.run([*argv, "-d", str(unit.path)], capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode == 0, done.stderr


def _api_search(base: str, headers: dict[str, str], probe: Path) -> tuple[bool, str]:
    form = {"case_number": CASE, "purpose": PURPOSE, "galleries": [GALLERY]}
    files = {"probe": (probe.name, probe.read_bytes(), "image/jpeg")}
    answer = httpx2.post(f"{base}/searches", data=form, files=files, headers=headers, timeout=300)
    if answer.status_code == 201:
        return True, ""
    assert answer.status_code == 403, answer.text
    return False, str(answer.json()["error"].get("rule_id"))


def test_searches_from_cli_processes_and_the_server_at_once_cannot_pass_the_limit(
    unit: SignedInUnit, lfw_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = lfw_images / "Colin_Powell" / "Colin_Powell_0005.jpg"
    with monkeypatch.context() as patch:
        patch.setenv("FACELEDGER_CONFIG_DIR", str(unit.folders[EVE]))
        stored = json.loads(accounts_cli.cli_file(unit.dd).read_text())
    headers = {"Authorization": f"Bearer {stored['session']['token']}", DEVICE_HEADER: stored["device"]}
    for name, value in unit.env.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    with serving(LAUNCH, unit.path, port) as server:
        read_until(server, r"Uvicorn running on", timeout=120)
        base = f"http://127.0.0.1:{port}/api/v1"
        with ThreadPoolExecutor(max_workers=6) as pool:
            jobs = [pool.submit(_cli_search, unit, probe) for _ in range(4)]
            jobs += [pool.submit(_api_search, base, headers, probe) for _ in range(2)]
            outcomes = [job.result() for job in jobs]
    passed = [ok for ok, _why in outcomes if ok]
    refusals = [why for ok, why in outcomes if not ok]
    assert len(passed) == LIMIT, outcomes
    assert len(refusals) == 6 - LIMIT
    assert all("limit.daily" in why for why in refusals), refusals
