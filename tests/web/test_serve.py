"""``faceledger serve`` for real: a new data directory, the bootstrap secret printed once, the API up.

The server runs in its own process on a free local port, as a person would start it; the
test reads the secret from its output, creates the first administrator with it over HTTP,
and stops the server.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx2
import pytest
from served import free_port, read_until, serving

pytestmark = pytest.mark.slow

# `serve` on a minimal Typer app, so that this test does not depend on how the main app wires it.
LAUNCH = """
import sys, typer
from faceledger.cli import serve
app = typer.Typer()
@app.callback()
def root() -> None: ...
serve.register(app)
app(sys.argv[1:])
"""
COMMAND = (sys.executable, "-c", LAUNCH)


def test_the_first_run_prints_a_bootstrap_secret_that_makes_the_first_administrator(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    with serving(COMMAND, data_dir, port) as server:
        secret, _ = read_until(server, r"flb_[A-Za-z0-9_-]+")
        read_until(server, r"Uvicorn running on")
        base = f"http://127.0.0.1:{port}/api/v1"
        assert httpx2.get(f"{base}/auth/bootstrap").json() == {"needed": True}
        claim = {
            "secret": secret.group(0),
            "username": "ada.admin",
            "password": "a long enough passphrase",
            "organisation": "Example Constabulary",
            "unit": "IT",
        }
        made = httpx2.post(f"{base}/auth/bootstrap", json=claim)
        assert made.status_code == 201, made.text
        assert made.json()["user"]["roles"] == ["system_admin"]
        assert httpx2.post(f"{base}/auth/bootstrap", json=claim).status_code == 409
        assert "server" not in {name.lower() for name in httpx2.get(f"{base}/health").headers}
    assert (data_dir / "faceledger.db").exists()

    with serving(COMMAND, data_dir, port) as again:
        _, output = read_until(again, r"Uvicorn running on")
        assert "flb_" not in output  # an account exists: no secret is printed any more
