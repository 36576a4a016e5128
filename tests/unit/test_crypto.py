"""Envelope encryption, key files and JWS signatures."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest

from coop.kit.crypto import DecryptionError, load_keyring
from coop.kit.settings import Settings


def test_key_files_are_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = load_keyring(settings)
    for name in ("master.key", "signing.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    second = load_keyring(settings)
    assert first.master == second.master and first.kid == second.kid


def test_keys_from_the_environment_take_precedence(tmp_path: Path) -> None:
    from coop.kit.crypto import b64url

    settings = Settings(data_dir=tmp_path, master_key=b64url(b"m" * 32), signing_key=b64url(b"s" * 32))
    keyring = load_keyring(settings)
    assert keyring.master == b"m" * 32
    assert not (tmp_path / "master.key").exists()
    assert "mmmm" not in repr(settings) and b64url(b"m" * 32) not in repr(settings)


def test_envelope_round_trip_and_binding(tmp_path: Path) -> None:
    keyring = load_keyring(Settings(data_dir=tmp_path))
    wrapped = keyring.new_wrapped_data_key(owner="member-1")
    key = keyring.unwrap_data_key(wrapped, owner="member-1")
    blob = key.encrypt(b"53.40838,-2.99164", b"ping:1")
    assert b"53.40838" not in blob
    assert key.decrypt(blob, b"ping:1") == b"53.40838,-2.99164"
    with pytest.raises(DecryptionError):
        key.decrypt(blob, b"ping:2")
    with pytest.raises(DecryptionError):
        keyring.unwrap_data_key(wrapped, owner="member-2")


def test_jws_verifies_with_pyjwt_and_detects_tampering(tmp_path: Path) -> None:
    keyring = load_keyring(Settings(data_dir=tmp_path))
    token = keyring.sign_jws({"amount_pence": 100})
    key = jwt.PyJWK(keyring.jwks()["keys"][0]).key
    assert jwt.api_jws.PyJWS().decode(token, key=key, algorithms=["EdDSA"]) == b'{"amount_pence":100}'
    header, _payload, signature = token.split(".")
    from coop.kit.crypto import b64url

    forged_payload = b64url(b'{"amount_pence":999}')
    forged = f"{header}.{forged_payload}.{signature}"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.api_jws.PyJWS().decode(forged, key=key, algorithms=["EdDSA"])
    with pytest.raises(DecryptionError):
        keyring.verify_jws(forged)
    assert keyring.verify_jws(token) == {"amount_pence": 100}
