"""The audit log's Ed25519 key, kept in a file outside the database.

Whoever can rewrite the database must not thereby be able to re-sign it: the private key
lives in its own file, readable by its owner only (mode 0600), created once at
``faceledger init`` and never overwritten. The public key goes to auditors as PEM; its
fingerprint (``sha256:`` + hex SHA-256 of the 32 raw key bytes) is what exports and
checkpoints name, so an auditor can tell at a glance whether they hold the right key.

This is the only module that imports ``cryptography`` for signing; the audit package sees
it through the small Signer / Verifier interfaces of :mod:`faceledger.audit.checkpoint`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from faceledger.errors import ConflictError, StoreError

KEY_FILE_MODE = 0o600


def key_fingerprint(raw_public_key: bytes) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key."""
    return "sha256:" + hashlib.sha256(raw_public_key).hexdigest()


class LogPublicKey:
    """The log's public key: verifies entries and checkpoints, exportable as PEM."""

    __slots__ = ("_key", "_raw")

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @classmethod
    def from_pem(cls, data: bytes, *, source: str) -> LogPublicKey:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise StoreError(f"{source}: not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise StoreError(f"{source}: an audit log key is Ed25519, this is a {type(key).__name__}")
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> LogPublicKey:
        return cls.from_pem(_read(path, "public key"), source=str(path))

    @property
    def raw(self) -> bytes:
        return self._raw

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self._raw)

    def pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def write(self, path: Path) -> None:
        """Write the PEM for auditors (public: no permission restriction needed)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.pem())
        except OSError as exc:
            raise StoreError(f"cannot write the public key to {path}: {exc.strerror or exc}") from None

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class LogSigner:
    """The log's private key, loaded from its key file."""

    __slots__ = ("_key", "_public", "path")

    def __init__(self, key: Ed25519PrivateKey, path: Path) -> None:
        self._key = key
        self._public = LogPublicKey(key.public_key())
        self.path = path

    @classmethod
    def generate(cls, path: Path) -> LogSigner:
        """Create a new key file at ``path`` (mode 0600); refuses to replace an existing one."""
        if path.exists():
            raise ConflictError(_exists(path))
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(path, pem)
        return cls(key, path)

    @classmethod
    def load(cls, path: Path) -> LogSigner:
        """The key in ``path``; refuses a file that other users could read."""
        _check_private_mode(path)
        try:
            key = serialization.load_pem_private_key(_read(path, "signing key"), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise StoreError(f"{path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise StoreError(f"{path}: an audit signing key is Ed25519, this is a {type(key).__name__}")
        return cls(key, path)

    @property
    def public_key(self) -> LogPublicKey:
        return self._public

    @property
    def fingerprint(self) -> str:
        return self._public.fingerprint

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def _exists(path: Path) -> str:
    return f"an audit signing key already exists at {path}; it is never replaced"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"no audit {what} at {path}") from None
    except OSError as exc:
        raise StoreError(f"cannot read the audit {what} {path}: {exc.strerror or exc}") from None


def _check_private_mode(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise StoreError(f"no audit signing key at {path}") from None
    except OSError as exc:
        raise StoreError(f"cannot read the audit signing key {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise StoreError(
            f"the audit signing key {path} can be read by other users (mode {mode:04o}); "
            f"restrict it with: chmod 600 {path}"
        )


def _write_private(path: Path, data: bytes) -> None:
    """Write a private temporary file, then link it into place: no half-written key, no clobbering."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        try:
            os.fchmod(fd, KEY_FILE_MODE)
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        _link_new(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot create the audit signing key {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _link_new(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        raise ConflictError(_exists(target)) from None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
