"""The second factor: TOTP seeds kept encrypted, and codes accepted once.

To check a code the seed itself is needed, so unlike a password it cannot be stored as a
one-way hash. It is stored AES-256-GCM encrypted under a key kept in a file of the data
directory (``keys/totp.key``, mode 0600), with the user's id as associated data so a seed
cannot be moved to another account row. A copy of the database alone (a backup, a
PostgreSQL replica, a dump attached to a ticket) then holds no usable seed; whoever also
holds the key file does, which is why the file sits beside the audit signing key and is
backed up separately. Losing the key file means every account must enrol TOTP again.

Codes are accepted one step (30 s) either side of now (clock drift), and each accepted
step is remembered so the same code, or an older one, cannot be played back.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import stat
from datetime import datetime
from pathlib import Path

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceledger.errors import StoreError

KEY_FILE = Path("keys") / "totp.key"
KEY_BYTES = 32
NONCE_BYTES = 12
VALID_WINDOW = 1
ISSUER = "faceledger"


class TotpVault:
    """Encrypts and decrypts TOTP seeds with the data directory's key file."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / KEY_FILE

    def seal(self, user_id: int, seed: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(self._key(create=True)).encrypt(nonce, seed.encode("ascii"), _aad(user_id))

    def open(self, user_id: int, sealed: bytes) -> str:
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            plain = AESGCM(self._key(create=False)).decrypt(nonce, body, _aad(user_id))
        except InvalidTag:
            raise StoreError(
                f"the TOTP seed of user {user_id} does not decrypt with {self.path}: the key file "
                "was replaced or the row was altered; re-enrol the account (faceledger user enrol-totp)"
            ) from None
        return plain.decode("ascii")

    def _key(self, *, create: bool) -> bytes:
        if create and not self.path.exists():
            _create_key(self.path)
        _check_mode(self.path)
        try:
            key = self.path.read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"the TOTP key file {self.path} is missing: restore it from its backup, "
                "or re-enrol every account's second factor (faceledger user enrol-totp)"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read the TOTP key file {self.path}: {exc.strerror or exc}") from None
        if len(key) != KEY_BYTES:
            raise StoreError(f"the TOTP key file {self.path} is damaged (expected {KEY_BYTES} bytes)")
        return key


def _aad(user_id: int) -> bytes:
    return f"faceledger totp seed of user {user_id}".encode("ascii")


def _check_mode(path: Path) -> None:
    if os.name != "posix":  # pragma: no cover
        return
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise StoreError(
                f"the TOTP key file {path} can be read by other users (mode {mode:04o}); "
                f"restrict it with: chmod 600 {path}"
            )


def _create_key(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first: use theirs
    except OSError as exc:
        raise StoreError(f"cannot create the TOTP key file {path}: {exc.strerror or exc}") from None
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)


def new_seed() -> str:
    return pyotp.random_base32()


def provisioning_uri(seed: str, *, username: str, organisation: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (usually as a QR code)."""
    return pyotp.TOTP(seed).provisioning_uri(name=username, issuer_name=f"{ISSUER} ({organisation})")


def current_code(seed: str, at: datetime) -> str:
    """The code an authenticator shows at ``at``."""
    return pyotp.TOTP(seed).at(at)


def seed_from_uri(uri: str) -> str:
    """The seed inside a provisioning URI (what an authenticator app extracts from the QR code)."""
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    return totp.secret


def matching_step(seed: str, code: str, now: datetime) -> int | None:
    """The time step ``code`` belongs to (now or one step either side), or None."""
    cleaned = code.replace(" ", "").strip()
    if len(cleaned) != 6 or not cleaned.isdigit():
        return None
    totp = pyotp.TOTP(seed)
    base = totp.timecode(now)
    found: int | None = None
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        # compare every candidate: the loop takes the same time whichever one matches
        if hmac.compare_digest(totp.at(now, counter_offset=offset), cleaned):
            found = base + offset
    return found
