"""Keys, envelope encryption and compact JWS (EdDSA).

Invariants:
- The master key (AES-256) only wraps per-member data keys; member data is encrypted under data keys.
- Ciphertexts are ``nonce (12 bytes) || AES-GCM(ciphertext || tag)``; the AAD binds each one to its
  owner and purpose, so a ciphertext moved to another row or member fails to decrypt.
- Key material comes from settings or from 0600 files in ``DATA_DIR``; it is never logged or returned.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from coop.kit.settings import Settings, get_settings

NONCE_BYTES = 12


class DecryptionError(Exception):
    """A ciphertext did not authenticate under the key and AAD given (or the key is gone)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes that are hashed and signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _load_or_create_secret(*, configured: str | None, path: Path, size: int) -> bytes:
    """The configured secret, else the one in ``path``, else a new random one written there with 0600."""
    if configured:
        raw = b64url_decode(configured.strip())
        if len(raw) != size:
            raise ValueError(f"{path.name}: expected {size} bytes of base64url")
        return raw
    if path.exists():
        raw = b64url_decode(path.read_text().strip())
        if len(raw) != size:
            raise ValueError(f"{path}: expected {size} bytes of base64url")
        return raw
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = os.urandom(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(b64url(raw) + "\n")
    return raw


class DataKey:
    """A member's AES-256-GCM data key, ready to encrypt and decrypt many values."""

    __slots__ = ("_aead",)

    def __init__(self, raw: bytes) -> None:
        self._aead = AESGCM(raw)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def encrypt_many(self, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
        """``encrypt`` for many ``(plaintext, aad)`` pairs, each with its own random nonce (drawn at once)."""
        nonces = os.urandom(NONCE_BYTES * len(items))
        encrypt = self._aead.encrypt
        sealed = []
        for position, (plaintext, aad) in enumerate(items):
            nonce = nonces[position * NONCE_BYTES:(position + 1) * NONCE_BYTES]
            sealed.append(nonce + encrypt(nonce, plaintext, aad))
        return sealed

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError("ciphertext does not authenticate") from exc


@dataclass(frozen=True)
class Keyring:
    """The co-op's master key (wraps data keys) and Ed25519 signing key."""

    master: bytes
    signing: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing.public_key()

    @property
    def kid(self) -> str:
        """RFC 7638 JWK thumbprint of the public key."""
        jwk = self.public_jwk_core()
        digest = hashlib.sha256(canonical_json(jwk)).digest()
        return b64url(digest)

    def public_jwk_core(self) -> dict[str, str]:
        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK set served at ``GET /v1/coop``."""
        return {"keys": [{**self.public_jwk_core(), "kid": self.kid, "alg": "EdDSA", "use": "sig"}]}

    # Envelope encryption -------------------------------------------------------------------------

    def new_wrapped_data_key(self, *, owner: str) -> bytes:
        """A fresh random data key, wrapped by the master key and bound to ``owner``."""
        return self.wrap_data_key(os.urandom(32), owner=owner)

    def wrap_data_key(self, raw: bytes, *, owner: str) -> bytes:
        return DataKey(self.master).encrypt(raw, b"data-key:" + owner.encode())

    def unwrap_data_key(self, wrapped: bytes, *, owner: str) -> DataKey:
        return DataKey(DataKey(self.master).decrypt(wrapped, b"data-key:" + owner.encode()))

    # Signatures ----------------------------------------------------------------------------------

    def sign_jws(self, payload: Any) -> str:
        """Compact JWS (``alg: EdDSA``, ``kid`` set) over the canonical JSON of ``payload``."""
        header = {"alg": "EdDSA", "kid": self.kid, "typ": "JOSE"}
        signing_input = f"{b64url(canonical_json(header))}.{b64url(canonical_json(payload))}"
        signature = self.signing.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"

    def verify_jws(self, token: str) -> Any:
        """The payload of a compact JWS made by this key; raises ``DecryptionError`` if it does not verify."""
        try:
            header_b64, payload_b64, signature_b64 = token.split(".")
            header = json.loads(b64url_decode(header_b64))
            if header.get("alg") != "EdDSA":
                raise DecryptionError("unexpected alg")
            self.public_key.verify(b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode())
            return json.loads(b64url_decode(payload_b64))
        except (ValueError, InvalidSignature) as exc:
            raise DecryptionError("signature does not verify") from exc


def load_keyring(settings: Settings) -> Keyring:
    """Keys from settings, else from (or newly into) ``DATA_DIR``."""
    master = _load_or_create_secret(
        configured=settings.master_key.get_secret_value() if settings.master_key else None,
        path=settings.data_dir / "master.key",
        size=32,
    )
    seed = _load_or_create_secret(
        configured=settings.signing_key.get_secret_value() if settings.signing_key else None,
        path=settings.data_dir / "signing.key",
        size=32,
    )
    return Keyring(master=master, signing=Ed25519PrivateKey.from_private_bytes(seed))


@lru_cache(maxsize=1)
def get_keyring() -> Keyring:
    """The process-wide keyring for the configured settings."""
    return load_keyring(get_settings())
