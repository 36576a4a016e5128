"""Opaque bearer tokens: 32 random bytes shown once, stored as SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "coop_"  # noqa: S105 - a public prefix, not a secret


def new_token() -> str:
    """A fresh token: a recognisable prefix and 32 random bytes (base64url)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
