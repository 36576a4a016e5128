"""One error hierarchy, rendered as RFC 9457 problem details by one handler (see ``api.problems``).

Services raise these; routers never build error responses themselves.
"""

from __future__ import annotations

from typing import Any


class CoopError(Exception):
    """Base of every error a client may see; ``status`` is the HTTP status it maps to."""

    status: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, extensions: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extensions = extensions or {}
        """RFC 9457 extension members (JSON values), rendered beside ``type``/``detail``; never secrets."""


class Unauthenticated(CoopError):
    status, title, type_slug = 401, "Unauthenticated", "unauthenticated"


class Forbidden(CoopError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(CoopError):
    status, title, type_slug = 404, "Not found", "not-found"


class Conflict(CoopError):
    status, title, type_slug = 409, "Conflict", "conflict"


class PayloadTooLarge(CoopError):
    status, title, type_slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(CoopError):
    status, title, type_slug = 415, "Unsupported media type", "unsupported-media-type"


class InvalidInput(CoopError):
    status, title, type_slug = 422, "Invalid input", "invalid-input"


class RateLimited(CoopError):
    status, title, type_slug = 429, "Too many requests", "rate-limited"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})


class Unavailable(CoopError):
    status, title, type_slug = 503, "Service unavailable", "unavailable"
