"""Shapes of the identifiers that reach the consent domain through URL paths.

Invariant: a path segment that cannot be a purpose code or an id of ours is answered as unknown (404)
before it reaches the database, so nothing a client puts in a path (a NUL byte, 10 kB of text) can make
a query fail with a 5xx.
"""

from __future__ import annotations

import re

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PURPOSE_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,59}")


def looks_like_uuid(value: str) -> bool:
    """True for a canonical lower-case UUID string (the form every id here is issued in)."""
    return _UUID.fullmatch(value) is not None


def looks_like_purpose_code(value: str) -> bool:
    """True for a possible purpose code: lower-case letters, digits and hyphens, at most 60."""
    return _PURPOSE_CODE.fullmatch(value) is not None
