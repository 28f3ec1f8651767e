"""The audit log's Ed25519 key file: created private, never replaced, refused when exposed."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from faceledger.adapters.signing import LogPublicKey, LogSigner, key_fingerprint
from faceledger.audit import verify
from faceledger.errors import ConflictError, StoreError

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "audit-signing.pem"


@posix_only
def test_key_file_is_private(key_path: Path) -> None:
    LogSigner.generate(key_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [p.name for p in key_path.parent.iterdir()] == [key_path.name]  # no temporary left behind


def test_generated_key_loads_and_signs(key_path: Path) -> None:
    signer = LogSigner.generate(key_path)
    loaded = LogSigner.load(key_path)
    assert loaded.fingerprint == signer.fingerprint
    signature = loaded.sign(b"message")
    assert signer.public_key.verify(b"message", signature)
    assert not signer.public_key.verify(b"messagE", signature)
    assert not signer.public_key.verify(b"message", signature[:-1] + bytes([signature[-1] ^ 1]))


def test_two_keys_differ(tmp_path: Path) -> None:
    assert LogSigner.generate(tmp_path / "a").fingerprint != LogSigner.generate(tmp_path / "b").fingerprint


def test_an_existing_key_is_never_replaced(key_path: Path) -> None:
    signer = LogSigner.generate(key_path)
    before = key_path.read_bytes()
    with pytest.raises(ConflictError, match="already exists"):
        LogSigner.generate(key_path)
    assert key_path.read_bytes() == before
    assert LogSigner.load(key_path).fingerprint == signer.fingerprint


@posix_only
def test_a_key_other_users_can_read_is_refused(key_path: Path) -> None:
    LogSigner.generate(key_path)
    key_path.chmod(0o640)
    with pytest.raises(StoreError, match=r"mode 0640.*chmod 600"):
        LogSigner.load(key_path)


def test_missing_or_garbage_key_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no audit signing key at"):
        LogSigner.load(tmp_path / "absent.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    with pytest.raises(StoreError, match="not an unencrypted PEM private key"):
        LogSigner.load(garbage)
    with pytest.raises(StoreError, match="not a PEM public key"):
        LogPublicKey.load(garbage)


def test_keys_of_another_algorithm_are_refused(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    with pytest.raises(StoreError, match="is Ed25519"):
        LogSigner.load(path)
    public = tmp_path / "ec.pub"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(StoreError, match="is Ed25519"):
        LogPublicKey.load(public)


def test_public_key_pem_round_trip_and_fingerprint(tmp_path: Path, key_path: Path) -> None:
    signer = LogSigner.generate(key_path)
    pub_path = tmp_path / "export" / "audit-public.pem"
    signer.public_key.write(pub_path)
    assert pub_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    public = LogPublicKey.load(pub_path)
    assert public.raw == signer.public_key.raw
    assert len(public.raw) == 32
    assert (
        public.fingerprint
        == key_fingerprint(public.raw)
        == "sha256:" + hashlib.sha256(public.raw).hexdigest()
    )
    assert public.verify(b"x", signer.sign(b"x"))
    # The standalone verifier computes the same fingerprint from the PEM on its own.
    assert verify.key_fingerprint(verify.load_public_key(pub_path)) == signer.fingerprint


def test_unwritable_key_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create the audit signing key"):
        LogSigner.generate(blocker / "key.pem")
