"""RFC 9457 problem details: every error the API returns goes through here.

Invariant: no response body ever carries a traceback, SQL or a secret; unexpected exceptions are logged
with their traceback and answered with a generic 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from coop.kit.errors import CoopError

log = logging.getLogger("coop.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemDetail(BaseModel):
    """The body of every error response (some problems add extension members, e.g. ``sealed_through``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


def problem_type(slug: str) -> str:
    return f"urn:coop:problem:{slug}"


def problem_response(*, status: int, detail: str, slug: str | None = None, title: str | None = None,
                     errors: list[dict[str, Any]] | None = None,
                     headers: dict[str, str] | None = None,
                     extensions: dict[str, Any] | None = None) -> JSONResponse:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": problem_type(slug or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    for name, value in (extensions or {}).items():
        body.setdefault(name, value)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _clean_validation_errors(raw: list[Any]) -> list[dict[str, Any]]:
    cleaned = []
    for error in raw:
        cleaned.append({
            "loc": [part if isinstance(part, int | str) else str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        })
    return cleaned


async def _coop_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CoopError)
    return problem_response(status=exc.status, detail=exc.detail, slug=exc.type_slug, title=exc.title,
                            errors=exc.errors, headers=exc.headers, extensions=exc.extensions)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_validation_errors(list(exc.errors()))
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5]
    ) or "request does not match the expected shape"
    return problem_response(status=422, detail=detail, slug="invalid-input", title="Invalid input",
                            errors=errors)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode (e.g. not UTF-8). The contract has no 400: a body
        # that is not JSON is invalid input, like any other malformed body.
        return problem_response(status=422, detail="the request body is not valid UTF-8 JSON",
                                slug="invalid-input", title="Invalid input")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such resource"
    if exc.status_code == 405:
        detail = "method not allowed on this resource"
    return problem_response(status=exc.status_code, detail=detail, headers=dict(exc.headers or {}))


async def _integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    log.info("integrity conflict: %s", type(exc).__name__)
    return problem_response(status=409, detail="the request conflicts with the current state; retry",
                            slug="conflict", title="Conflict")


async def _data_error(_request: Request, exc: Exception) -> JSONResponse:
    log.info("database refused a value: %s", type(exc).__name__)
    return problem_response(status=422, detail="a value is out of range or not representable",
                            slug="invalid-input", title="Invalid input")


async def _operational_error(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable or busy: %s", type(exc).__name__)
    return problem_response(status=503, detail="the database is busy or unavailable; retry shortly",
                            slug="unavailable", title="Service unavailable", headers={"Retry-After": "1"})


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return problem_response(status=500, detail="an unexpected error occurred; it has been logged",
                            slug="internal", title="Internal server error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CoopError, _coop_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(OperationalError, _operational_error)
    app.add_exception_handler(Exception, _unexpected)


def problem_doc(description: str) -> dict[str, Any]:
    return {"description": description, "model": ProblemDetail,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}}


COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: problem_doc("Invalid input"),
    429: problem_doc("Rate limited (see Retry-After)"),
    503: problem_doc("The database is busy or a statement timed out; retry after Retry-After"),
}

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_doc("Missing, invalid or revoked token"),
    403: problem_doc("The token's account lacks the role this operation needs"),
    404: problem_doc("Unknown, or not visible to the caller"),
}
