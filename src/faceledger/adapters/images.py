"""Content-addressed image files: ``images/ab/cd/<sha256>``.

The name of a file is the sha256 of its bytes, so the same photo enrolled in two galleries
is stored once, a record can always be checked against the exact bytes it came from, and a
write can never half-replace an existing image. Writes go to a temporary file in the same
file system, are fsynced, renamed into place and the folder fsynced, so after a crash or
power loss a path either holds the complete image or does not exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from faceledger.errors import NotFoundError, StoreError

_SHA256 = re.compile(r"[0-9a-f]{64}")
TEMP_DIR_NAME = ".tmp"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make a rename durable; platforms without directory fds (Windows) skip it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ImageStore:
    """Image bytes on disk, addressed by their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp_dir = root / TEMP_DIR_NAME

    def path_for(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise StoreError(f"{sha256!r} is not a lowercase hex sha256")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store ``data`` (a no-op when already stored) and return its sha256.

        ``sha256``, when given, is checked against the bytes so a caller cannot file an
        image under the wrong name.
        """
        actual = sha256_hex(data)
        if sha256 is not None and sha256 != actual:
            raise StoreError(f"image bytes hash to {actual}, not the expected {sha256}")
        target = self.path_for(actual)
        if target.is_file():
            return actual
        try:
            self._write_atomically(target, data)
        except OSError as exc:
            raise StoreError(f"cannot write image file {target}: {exc.strerror or exc}") from exc
        return actual

    def _write_atomically(self, target: Path, data: bytes) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=target.name[:16] + ".", suffix=".part", dir=self.temp_dir)
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            # Evidence is never edited in place: the stored file is read-only, and only by its owner.
            temp.chmod(stat.S_IRUSR)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        _fsync_dir(target.parent)

    def read(self, sha256: str, *, verify: bool = True) -> bytes:
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"image {sha256} is not in the image store ({path})") from exc
        except OSError as exc:
            raise StoreError(f"cannot read image file {path}: {exc.strerror or exc}") from exc
        if verify and sha256_hex(data) != sha256:
            raise StoreError(f"image file {path} is corrupt: its bytes no longer match its sha256")
        return data

    def delete(self, sha256: str) -> bool:
        """Remove one image file; True when there was one."""
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except PermissionError:
            # Windows refuses to unlink read-only files.
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
            path.unlink()
        for folder in (path.parent, path.parent.parent):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty
        return True

    def delete_many(self, sha256s: Iterable[str]) -> int:
        return sum(1 for sha in sha256s if self.delete(sha))

    def hashes(self) -> Iterator[str]:
        """Every stored sha256 (files whose name is not a sha256 are ignored)."""
        if not self.root.is_dir():
            return
        for first in sorted(self.root.iterdir()):
            if first.name == TEMP_DIR_NAME or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for path in sorted(second.iterdir()):
                    if _SHA256.fullmatch(path.name) and path.is_file():
                        yield path.name

    def remove_orphans(self, keep: set[str]) -> int:
        """Delete stored images no record refers to (left by a crash before a commit)."""
        orphans = [sha for sha in self.hashes() if sha not in keep]
        return self.delete_many(orphans)

    def clean_temp(self) -> int:
        """Delete temporary files left by a write that never finished."""
        if not self.temp_dir.is_dir():
            return 0
        removed = 0
        for path in self.temp_dir.iterdir():
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
        return removed
