"""ASGI middleware: body size limit (413, checked before the body is read in full), JSON-only
request bodies (415), and paths with NUL bytes (404: they can name no resource and no database takes them)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

BODY_METHODS = {"POST", "PUT", "PATCH"}


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class BodyGuardMiddleware:
    """Refuses oversized bodies and non-JSON bodies before the app sees them."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "\x00" in scope["path"]:
            await self._refuse(scope, receive, send, status=404, detail="no such resource")
            return
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length_text = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        try:
            length = int(length_text) if length_text is not None else None
        except ValueError:
            length = None
        if length is not None and length > self.max_body_bytes:
            await self._refuse(scope, receive, send, status=413,
                               detail=f"request body is {length} bytes; the limit is {self.max_body_bytes}")
            return
        has_body = chunked or (length is not None and length > 0)
        if has_body and not _is_json(headers.get("content-type", "")):
            await self._refuse(scope, receive, send, status=415,
                               detail="request bodies must be JSON (Content-Type: application/json)")
            return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
            return message

        return wrapped

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, *, status: int, detail: str) -> None:
        response = problem_response(status=status, detail=detail)
        await response(scope, receive, send)

