"""The ASGI application: ``create_app()`` wires settings, keys, the engine, middleware and routers."""

from __future__ import annotations

from fastapi import FastAPI

from api import accounts, consent, ingest, ledger, licensing, public, releases, rights, tables
from api.middleware import BodyGuardMiddleware
from api.problems import ProblemDetail, install_problem_handlers
from coop.kit.crypto import load_keyring
from coop.kit.db import engine_for
from coop.kit.ratelimit import SlidingWindowLimiter
from coop.kit.settings import Settings, get_settings

DESCRIPTION = """
The backend of the Liverpool City Region residents' data co-operative.

Residents send location pings under per-purpose consent; the co-op publishes only k-anonymous H3
aggregates under board-approved licences; fees flow through a hash-chained ledger back to members.
Errors are RFC 9457 problem details (`application/problem+json`). Authenticate with
`Authorization: Bearer <token>`.
"""


def create_app(settings: Settings | None = None, *, background_sealing: bool = False) -> FastAPI:
    """A new application bound to ``settings`` (default: the process settings); with
    ``background_sealing`` its lifespan also runs the sealing loop (as ``coop serve`` does)."""
    settings = settings or get_settings()
    app = FastAPI(title="Residents' data co-op", version="1.0.0", description=DESCRIPTION)
    app.state.settings = settings
    app.state.background_sealing = background_sealing
    app.state.keyring = load_keyring(settings)
    app.state.engine = engine_for(settings.resolved_database_url,
                                  statement_timeout_ms=settings.db_statement_timeout_ms)
    app.state.signup_limiter = SlidingWindowLimiter(limit=settings.signup_rate_per_hour, window_s=3600)
    app.state.ingest_limiter = SlidingWindowLimiter(limit=settings.ingest_rate_per_minute, window_s=60)
    app.state.export_limiter = SlidingWindowLimiter(limit=settings.export_rate_per_hour, window_s=3600)
    install_problem_handlers(app)
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    for module in (public, accounts, consent, ingest, rights, licensing, releases, ledger, tables):
        app.include_router(module.router)
    app.include_router(tables.public_router)
    _register_problem_schema(app)
    return app


def create_serving_app() -> FastAPI:
    """The app ``coop serve`` runs: the process settings, with the sealing loop."""
    return create_app(background_sealing=True)


def _register_problem_schema(app: FastAPI) -> None:
    """Put ``ProblemDetail`` into the OpenAPI components (the error responses refer to it)."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ProblemDetail", ProblemDetail.model_json_schema())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
