"""A real ``faceledger serve`` process on a free local port, and reading what it prints."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(command: Sequence[str], data_dir: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """Run ``command serve --port PORT --data-dir DATA_DIR`` until the block ends."""
    env = {**os.environ, "FACELEDGER_CONFIG_DIR": str(data_dir.parent / "config")}
    argv = [*command, "serve", "--port", str(port), "--data-dir", str(data_dir)]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as process:
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def read_until(
    process: subprocess.Popen[str], pattern: str, timeout: float = 60
) -> tuple[re.Match[str], str]:
    """Read the server's output until ``pattern`` appears in it (fail, showing the output, if not)."""
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
