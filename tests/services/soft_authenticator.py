"""A WebAuthn authenticator in software, for the service tests (the browser test uses Chromium's own).

It makes what a browser hands back from ``navigator.credentials.create`` (attestation "none")
and ``navigator.credentials.get``: real P-256 keys, real signatures over the authenticator data
and the client data, so the service's checks (challenge, origin, rp id, signature, sign count)
run on genuine material. Its knobs make the bad cases: another origin, a counter that does not
increase (a clone), a credential flagged as synced.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class SoftAuthenticator:
    rp_id: str = "localhost"
    origin: str = "http://localhost:8000"
    sign_count: int = 0
    #: Flag the credential backup-eligible and backed up (a synced passkey).
    synced: bool = False
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def _flags(self) -> int:
        return UP | UV | ((BE | BS) if self.synced else 0)

    def _client_data(self, kind: str, challenge: bytes, origin: str | None) -> bytes:
        data = {
            "type": kind,
            "challenge": b64(challenge),
            "origin": origin or self.origin,
            "crossOrigin": False,
        }
        return json.dumps(data).encode()

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )

    def create(self, challenge: bytes, *, origin: str | None = None) -> str:
        """The JSON a browser posts after ``navigator.credentials.create``."""
        rp_hash = hashlib.sha256(self.rp_id.encode()).digest()
        attested = (
            bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self._cose_key()
        )
        auth_data = rp_hash + bytes([self._flags() | AT]) + struct.pack(">I", self.sign_count) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client = self._client_data("webauthn.create", challenge, origin)
        return json.dumps(
            {
                "id": b64(self.credential_id),
                "rawId": b64(self.credential_id),
                "type": "public-key",
                "response": {"clientDataJSON": b64(client), "attestationObject": b64(attestation)},
                "clientExtensionResults": {},
            }
        )

    def get(self, challenge: bytes, *, origin: str | None = None, count: int | None = None) -> str:
        """The JSON a browser posts after ``navigator.credentials.get``; the counter goes up by one
        (or is ``count``)."""
        self.sign_count = self.sign_count + 1 if count is None else count
        rp_hash = hashlib.sha256(self.rp_id.encode()).digest()
        auth_data = rp_hash + bytes([self._flags()]) + struct.pack(">I", self.sign_count)
        client = self._client_data("webauthn.get", challenge, origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": b64(self.credential_id),
                "rawId": b64(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64(client),
                    "authenticatorData": b64(auth_data),
                    "signature": b64(signature),
                },
                "clientExtensionResults": {},
            }
        )
