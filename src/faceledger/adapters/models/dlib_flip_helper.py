"""A second process that computes the mirrored descriptor pass of flip averaging.

dlib's ResNet holds the GIL for its whole ~75 ms pass, so threads cannot run the two
passes of flip averaging at once; a process can. The helper is a plain child process
(``python -m`` this module) that loads the ResNet once and then answers requests over its
stdin/stdout pipes: ``<count, bytes per chip>`` then the chips, answered by ``count x 128``
float64 values. Using a fresh interpreter rather than ``multiprocessing`` keeps it
independent of the caller's ``__main__`` module and start method.

Everything that can go wrong (the helper not ready yet, killed, hung, sending garbage) makes
:meth:`DescriptorHelper.submit` or :meth:`DescriptorHelper.collect` answer "no", and the
caller computes the pass itself: the helper can make a search faster, never wrong. Once it
has failed it stays down for the life of the owning pipeline.

POSIX only (it waits on pipes with ``select``); elsewhere :func:`helper_supported` is False.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import struct
import subprocess
import sys
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

ImageArray = npt.NDArray[np.uint8]

READY: Final = b"READY\n"
_HEADER: Final = struct.Struct("<II")
_DIM: Final = 128
_MODULE: Final = "faceledger.adapters.models.dlib_flip_helper"


def helper_supported() -> bool:
    """Whether a helper can run here: POSIX pipes and at least two CPU cores to use."""
    return os.name == "posix" and (os.cpu_count() or 1) >= 2


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def _shutdown(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5.0)
    if process.stdout is not None:
        process.stdout.close()


class DescriptorHelper:
    """Client side: start the helper, send it chips, get their descriptors back.

    ``start`` returns at once; the helper loads its model in the background and is used
    from the first request after it has said it is ready. ``seconds_per_chip`` (plus a
    fixed allowance) bounds how long a request may take before the helper is given up.
    """

    def __init__(self, weights: Path, *, seconds_per_chip: float = 2.0, fixed_seconds: float = 5.0) -> None:
        self.weights = weights
        self.seconds_per_chip = seconds_per_chip
        self.fixed_seconds = fixed_seconds
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], DescriptorHelper] | None = None
        self._ready = False
        self._failed = False
        self._pending = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the helper unless it runs already or has failed before."""
        if self._process is not None or self._failed:
            return
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                [sys.executable, "-m", _MODULE, str(self.weights)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                env=_child_env(),
                close_fds=True,
            )
        except OSError as exc:
            self._give_up(f"could not start ({exc})")
            return
        self._finalizer = weakref.finalize(self, _shutdown, self._process)

    @property
    def alive(self) -> bool:
        return self._process is not None and not self._failed and self._process.poll() is None

    def wait_ready(self, timeout: float) -> bool:
        """Block until the helper has loaded its model (or ``timeout`` seconds passed)."""
        self.start()
        return self._check_ready(timeout)

    def close(self) -> None:
        """Stop the helper: it exits on end of input; killed if it has not within 2 s.

        One still loading its model would only see the end of its input once loaded, so
        it is killed at once.
        """
        if self._process is not None and not self._ready and self._process.poll() is None:
            self._process.kill()
        if self._finalizer is not None:
            self._finalizer()
        self._process = None
        self._ready = False
        self._pending = 0

    # -- requests ------------------------------------------------------------------------

    def submit(self, chips: Sequence[ImageArray]) -> bool:
        """Send chips for describing; False (nothing sent) when the helper cannot take them."""
        if self._pending or not chips:
            return False
        self.start()
        if not self._check_ready(0.0):
            return False
        shape = chips[0].shape
        if any(c.shape != shape or c.dtype != np.uint8 for c in chips):
            return False
        payload = b"".join(np.ascontiguousarray(c).tobytes() for c in chips)
        message = _HEADER.pack(len(chips), chips[0].nbytes) + payload
        if not self._write(message, self._deadline(len(chips))):
            return False
        self._pending = len(chips)
        return True

    def collect(self) -> npt.NDArray[np.float64] | None:
        """The descriptors of the last submitted chips, or None when the helper failed."""
        count, self._pending = self._pending, 0
        if count == 0:
            return None
        data = self._read(count * _DIM * 8, self._deadline(count))
        if data is None:
            return None
        values = np.frombuffer(data, dtype=np.float64).reshape(count, _DIM).copy()
        if not np.isfinite(values).all():
            self._give_up("returned non-finite values")
            return None
        return values

    # -- plumbing ------------------------------------------------------------------------

    def _deadline(self, count: int) -> float:
        return time.monotonic() + self.fixed_seconds + self.seconds_per_chip * count

    def _check_ready(self, timeout: float) -> bool:
        if self._ready:
            return self.alive
        if not self.alive:
            if self._process is not None and not self._failed:
                self._give_up("exited while loading its model")
            return False
        data = self._read(len(READY), time.monotonic() + timeout, quiet=True)
        if data is None:
            return False
        if data != READY:
            self._give_up(f"sent {data!r} instead of its ready signal")
            return False
        self._ready = True
        return True

    def _write(self, data: bytes, deadline: float) -> bool:
        assert self._process is not None
        assert self._process.stdin is not None
        fd = self._process.stdin.fileno()
        view = memoryview(data)
        try:
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                    self._give_up("did not accept a request in time")
                    return False
                sent = os.write(fd, view[: 1 << 16])
                view = view[sent:]
        except OSError as exc:
            self._give_up(f"could not be written to ({exc})")
            return False
        return True

    def _read(self, size: int, deadline: float, *, quiet: bool = False) -> bytes | None:
        """Exactly ``size`` bytes; None on timeout (``quiet``: no data yet is not a failure)."""
        assert self._process is not None
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        chunks: list[bytes] = []
        got = 0
        try:
            while got < size:
                remaining = max(deadline - time.monotonic(), 0.0)
                if not select.select([fd], [], [], remaining)[0]:
                    if quiet and got == 0:
                        return None
                    self._give_up("did not answer in time")
                    return None
                chunk = os.read(fd, size - got)
                if not chunk:
                    self._give_up("exited")
                    return None
                chunks.append(chunk)
                got += len(chunk)
        except OSError as exc:
            self._give_up(f"could not be read from ({exc})")
            return None
        return b"".join(chunks)

    def _give_up(self, why: str) -> None:
        log.warning("flip helper process %s; computing mirrored descriptors in this process instead", why)
        self._failed = True
        self._ready = False
        if self._finalizer is not None:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
            self._finalizer()


# --- the helper process ----------------------------------------------------------------


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def serve(weights: Path, requests: BinaryIO, replies: BinaryIO) -> int:
    """Answer requests until end of input; returns the exit status."""
    from faceledger.adapters.models.dlib_backend import CHIP_SIZE, DescriptorNet

    net = DescriptorNet(weights)
    replies.write(READY)
    replies.flush()
    chip_bytes = CHIP_SIZE * CHIP_SIZE * 3
    while True:
        header = _read_exact(requests, _HEADER.size)
        if header is None:
            return 0
        count, size = _HEADER.unpack(header)
        if size != chip_bytes or not 0 < count <= 4096:
            print(f"flip helper: bad request header (count {count}, chip bytes {size})", file=sys.stderr)
            return 2
        payload = _read_exact(requests, count * size)
        if payload is None:
            return 0
        chips = np.frombuffer(payload, dtype=np.uint8).reshape(count, CHIP_SIZE, CHIP_SIZE, 3)
        replies.write(net(list(chips)).astype(np.float64).tobytes())
        replies.flush()


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print(f"usage: python -m {_MODULE} WEIGHTS_FILE", file=sys.stderr)
        return 2
    # Our replies go to the original stdout; anything else that prints goes to stderr.
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    try:
        return serve(Path(argv[0]), sys.stdin.buffer, replies)
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # the parent falls back on any failure; say why on stderr
        print(f"flip helper: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
