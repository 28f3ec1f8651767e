"""Random secrets, their digests, and password hashing.

Tokens, device credentials and bootstrap secrets are 256 random bits: nobody can guess
one, so a plain SHA-256 of it is a safe thing to store and look up by. Passwords are
chosen by people and can be guessed, so they get Argon2id, whose cost is a setting;
when the setting rises, a password is re-hashed at its owner's next successful sign-in.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from faceledger.config import AccountSettings
from faceledger.errors import ConfigError, ValidationError

SECRET_BYTES = 32
MAX_PASSWORD_CHARS = 1024


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_digest(a: str, b: str) -> bool:
    """Constant-time comparison, so response times say nothing about how close a guess was."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


@functools.lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def password_hasher(settings: AccountSettings) -> PasswordHasher:
    if settings.argon2_time_cost < 1 or settings.argon2_parallelism < 1:
        raise ConfigError("accounts.argon2_time_cost and accounts.argon2_parallelism must be at least 1")
    if settings.argon2_memory_kib < 8 * settings.argon2_parallelism:
        raise ConfigError("accounts.argon2_memory_kib must be at least 8 x accounts.argon2_parallelism")
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)


def check_new_password(password: str, *, username: str, settings: AccountSettings) -> None:
    """Refuse passwords that are too short, too long, blank, or the username itself."""
    if len(password) < settings.password_min_length:
        raise ValidationError(
            f"the password for {username!r} is too short: use at least "
            f"{settings.password_min_length} characters (a passphrase of several words works well)"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValidationError(f"the password for {username!r} is longer than {MAX_PASSWORD_CHARS} characters")
    if not password.strip() or password.strip().lower() == username.lower():
        raise ValidationError(f"the password for {username!r} must not be blank or the username")


def hash_password(password: str, settings: AccountSettings) -> str:
    return password_hasher(settings).hash(password)


def verify_password(stored_hash: str, password: str, settings: AccountSettings) -> tuple[bool, bool]:
    """(matches, needs a re-hash with the current cost settings)."""
    hasher = password_hasher(settings)
    try:
        hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False, False
    return True, hasher.check_needs_rehash(stored_hash)


@functools.lru_cache(maxsize=8)
def _decoy(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash(secrets.token_urlsafe(16))


def spend_like_a_password_check(password: str, settings: AccountSettings) -> None:
    """Take as long as a real check, so an unknown username cannot be told by timing."""
    password_hasher(settings)
    decoy = _decoy(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    verify_password(decoy, password, settings)
