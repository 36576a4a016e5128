"""The ``Idempotency-Key`` header and the one way a router answers an idempotent POST.

Invariant (coop/kit/idempotency.py): the same key with the same body from the same caller returns the
original status and body without running the operation again; with a different body it is a 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel import Session

from coop.kit.idempotency import run_idempotent

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                              description="Retrying with the same key and body "
                                                          "returns the first response")]


def idempotent_response(session: Session, *, caller_id: str, scope: str, key: str | None, body: BaseModel,
                        status_code: int, produce: Callable[[], BaseModel]) -> JSONResponse:
    """Run ``produce`` once per (caller, scope, key) and answer with its JSON (or the recorded answer)."""
    answered_status, content = run_idempotent(
        session, account_id=caller_id, scope=scope, key=key, body=body.model_dump(mode="json"),
        status_code=status_code, produce=lambda: produce().model_dump(mode="json"))
    return JSONResponse(content, status_code=answered_status)
