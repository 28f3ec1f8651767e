"""``faceledger serve`` for real: a new data directory, the bootstrap secret printed once, the API up.

The server runs in its own process on a free local port, as a person would start it; the
test reads the secret from its output, creates the first administrator with it over HTTP,
and stops the server.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(data_dir: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "FACELEDGER_CONFIG_DIR": str(data_dir.parent / "config")}
    command = [sys.executable, "-c", LAUNCH, "serve", "--port", str(port), "--data-dir", str(data_dir)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as process:
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def read_until(
    process: subprocess.Popen[str], pattern: str, timeout: float = 60
) -> tuple[re.Match[str], str]:
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen += line
        found = re.search(pattern, seen)
        if found:
            return found, seen
    raise AssertionError(f"no {pattern!r} in the server's output:\n{seen}")


def test_the_first_run_prints_a_bootstrap_secret_that_makes_the_first_administrator(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    with serving(data_dir, port) as server:
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

    with serving(data_dir, port) as again:
        _, output = read_until(again, r"Uvicorn running on")
        assert "flb_" not in output  # an account exists: no secret is printed any more
