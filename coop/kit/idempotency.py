"""``Idempotency-Key`` for POSTs that move money or create releases.

Invariants: per (caller, scope, key) the first response is stored with the request's SHA-256; the same
key and body returns that response again and does nothing else; another body is a 409. The key is
reserved (flushed) before the work runs, so a concurrent duplicate waits on the unique key and then
sees the stored response instead of doing the work twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from coop.kit.crypto import canonical_json
from coop.kit.errors import Conflict, InvalidInput
from coop.kit.idempotency_models import IdempotencyRecord
from coop.kit.timeutil import utcnow

MAX_KEY_LENGTH = 200


def run_idempotent(session: Session, *, account_id: str, scope: str, key: str | None,
                   body: Any, status_code: int,
                   produce: Callable[[], Any]) -> tuple[int, Any]:
    """Run ``produce`` once per key; returns ``(status_code, response_json)``."""
    if key is None:
        return status_code, produce()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters")
    digest = hashlib.sha256(canonical_json(body)).hexdigest()
    pk = (account_id, scope, key)
    existing = session.get(IdempotencyRecord, pk)
    if existing is None:
        record = IdempotencyRecord(account_id=account_id, scope=scope, key=key, request_sha256=digest,
                                   status_code=0, response={}, created_at=utcnow())
        try:
            with session.begin_nested():
                session.add(record)
        except IntegrityError:
            existing = session.get(IdempotencyRecord, pk, populate_existing=True)
            if existing is None:  # pragma: no cover - the other writer rolled back; let the client retry
                raise Conflict("a request with this Idempotency-Key is in progress; retry") from None
        else:
            response = produce()
            record.status_code = status_code
            record.response = response
            session.flush()
            return status_code, response
    if existing.request_sha256 != digest:
        raise Conflict("Idempotency-Key was already used with a different request body")
    return existing.status_code, existing.response
