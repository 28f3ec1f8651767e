"""Accounts, roles, API tokens, sessions and registered devices.

Registered on the shared :data:`faceledger.adapters.store.tables_base.metadata`; created by migration 0002.

No secret is stored in a form that can be replayed: passwords as Argon2 hashes, session and
API tokens, device credentials and the bootstrap secret as SHA-256 of high-entropy random
strings (a fast hash is enough when the input cannot be guessed). The TOTP seed must be
readable to check a code, so it is stored encrypted with a key kept outside the database
(see docs/accounts.md). Rows are never deleted: an audit entry that names user 7, session
41 or device ``lab-ws-03`` must keep meaning the same thing.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)

from faceledger.adapters.store.tables_base import SHA256_LEN, Id, metadata

USERNAME_LEN = 64
LABEL_LEN = 200
ROLE_LEN = 32
DEVICE_ID_LEN = 64

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(USERNAME_LEN), nullable=False, unique=True),
    Column("display_name", String(LABEL_LEN), nullable=False),
    Column("organisation", String(LABEL_LEN), nullable=False),
    Column("unit", String(LABEL_LEN), nullable=False),
    Column("password_hash", Text, nullable=False),
    # AES-GCM(nonce || ciphertext) of the base32 seed; NULL until enrolled.
    Column("totp_secret", LargeBinary, nullable=True),
    Column("totp_confirmed", Boolean, nullable=False),
    # The last accepted time step, so a code cannot be used twice.
    Column("totp_last_step", BigInteger, nullable=True),
    Column("failed_attempts", Integer, nullable=False),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("suspended", Boolean, nullable=False),
    Column("suspended_reason", Text, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("trial", Boolean, nullable=False),
    Column("created_by", String(USERNAME_LEN), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Activation (migration 0007): SHA-256 of the one-time activation code while one is
    # outstanding, when it stops working, and who issued it (the creator, or whoever reset
    # the account); then when the person activated it, and who vouched for them.
    Column("activation_hash", String(SHA256_LEN), nullable=True),
    Column("activation_expires_at", DateTime(timezone=True), nullable=True),
    Column("activation_issued_by", String(USERNAME_LEN), nullable=True),
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Column("vouched_by", String(USERNAME_LEN), nullable=True),
    Column("vouched_at", DateTime(timezone=True), nullable=True),
    sqlite_autoincrement=True,
)

user_roles = Table(
    "user_roles",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(ROLE_LEN), nullable=False),
    Column("granted_by", String(USERNAME_LEN), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "role", name="pk_user_roles"),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(DEVICE_ID_LEN), primary_key=True),
    Column("name", String(LABEL_LEN), nullable=False),
    Column("unit", String(LABEL_LEN), nullable=False),
    Column("credential_hash", String(SHA256_LEN), nullable=False),
    Column("registered_by", String(USERNAME_LEN), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", String(USERNAME_LEN), nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(SHA256_LEN), nullable=False, unique=True),
    # The registered device the session was opened on; NULL: none (searches will be refused).
    Column("device_id", String(DEVICE_ID_LEN), ForeignKey("devices.id"), nullable=True),
    Column("mfa", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # The browser credential (WebAuthn) whose assertion bound this page session to ``device_id``;
    # NULL: the device, if any, was proved by its secret (API, CLI) or not at all. Migration 0017.
    Column("browser_credential_id", Id, nullable=True),
    Index("ix_sessions_user_id", "user_id"),
    Index("ix_sessions_device_id", "device_id"),
    sqlite_autoincrement=True,
)

#: One-time codes a system administrator issues to enrol a browser as a registered device
#: (services/browser_devices.py). Only the SHA-256 of the code is kept. Migration 0017.
browser_enrolments = Table(
    "browser_enrolments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("device_id", String(DEVICE_ID_LEN), ForeignKey("devices.id"), nullable=False),
    Column("code_hash", String(SHA256_LEN), nullable=False, unique=True),
    Column("issued_by", String(USERNAME_LEN), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("used_by", String(USERNAME_LEN), nullable=True),
    Index("ix_browser_enrolments_device_id", "device_id"),
    sqlite_autoincrement=True,
)

#: A browser's WebAuthn credential: the public key its authenticator made at enrolment, for one
#: registered device. The private key never leaves the authenticator. Migration 0017.
browser_credentials = Table(
    "browser_credentials",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("device_id", String(DEVICE_ID_LEN), ForeignKey("devices.id"), nullable=False),
    Column("enrolment_id", Id, ForeignKey("browser_enrolments.id"), nullable=False, unique=True),
    Column("credential_id", LargeBinary, nullable=False, unique=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("enrolled_by", String(USERNAME_LEN), nullable=False),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    # Set when an assertion's sign count did not increase (a cloned authenticator): refused from then on.
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_browser_credentials_device_id", "device_id"),
    sqlite_autoincrement=True,
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(LABEL_LEN), nullable=False),
    Column("token_hash", String(SHA256_LEN), nullable=False, unique=True),
    # A subset of the owner's roles, as role names; narrowed further by the owner's roles at use.
    Column("scopes", JSON, nullable=False),
    # Whether the session that created the token had passed its second factor.
    Column("mfa", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", String(USERNAME_LEN), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    # The registered device the token was made on: it is accepted only with that device's
    # credential. None only for a server token (``server``), made where the policy allows it.
    Column("device_id", String(DEVICE_ID_LEN), nullable=True),
    Column("server", Boolean, nullable=False, server_default=false()),
    Index("ix_api_tokens_user_id", "user_id"),
    sqlite_autoincrement=True,
)

bootstrap_secrets = Table(
    "bootstrap_secrets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("secret_hash", String(SHA256_LEN), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # Set when claimed, or when a newer secret replaced this one.
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("used_by", String(USERNAME_LEN), nullable=True),
    sqlite_autoincrement=True,
)
