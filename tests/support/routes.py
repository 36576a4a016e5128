"""The application's route table, read back for generated tests (authorisation matrix, fuzzing, limits).

Invariants:
- Every route under ``/v1`` or the health checks is listed; a route is *protected* when any dependency
  in its tree reads the bearer token, and then some dependency must declare the roles it admits
  (``api.deps.declares_roles``); an undeclared protected route is an error, so no route can slip past
  the matrix.
- Several declaring dependencies on one route all apply: the admitted roles are their intersection
  (an empty declaration admits any account).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import SecretStr

from api.app import create_app
from api.deps import REQUIRED_ROLES_ATTRIBUTE
from coop.accounts.roles import Role
from coop.kit.crypto import b64url
from coop.kit.settings import Settings

ALL_ROLES = frozenset(Role)
PATH_PARAMETER = re.compile(r"{([^}:]+)(?::[^}]*)?}")


class UndeclaredRoute(AssertionError):
    """A route reads the bearer token but no dependency declares the roles it admits."""


@dataclass(frozen=True)
class RouteInfo:
    """One (method, path) of the app, with what the authorisation tests need to know about it."""

    method: str
    path: str
    route: APIRoute
    protected: bool
    roles: frozenset[Role]
    """The roles admitted (any one of them suffices); every role for a public route or an any-account route."""
    any_account: bool
    """True when the route admits any authenticated account (``AnyAccount``)."""

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def path_parameters(self) -> tuple[str, ...]:
        return tuple(PATH_PARAMETER.findall(self.path))

    @property
    def has_body(self) -> bool:
        return self.route.body_field is not None or "requestBody" in (self.route.openapi_extra or {})


def _calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _declared_roles(route: APIRoute) -> tuple[bool, frozenset[Role] | None]:
    """(reads the bearer token, the admitted roles or None when nothing declares them)."""
    reads_token = False
    admitted: frozenset[Role] | None = None
    for call in _calls(route.dependant):
        if isinstance(call, HTTPBearer):
            reads_token = True
        declared = getattr(call, REQUIRED_ROLES_ATTRIBUTE, None)
        if declared is None:
            continue
        roles = frozenset(declared) or ALL_ROLES
        admitted = roles if admitted is None else admitted & roles
    return reads_token, admitted


def _api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """(served path, route) of every API route, also through included routers (FastAPI >= 0.160 keeps
    them as ``_IncludedRouter`` entries that only ``iter_route_contexts`` opens)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies included routes into app.routes
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route.path, route
        return
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        if isinstance(original, APIRoute):
            yield str(context.path or original.path), original


def scratch_app() -> FastAPI:
    """An app for reading the route table at collection time: in-memory database, throwaway keys."""
    return create_app(Settings(database_url="sqlite://", data_dir=Path("/nonexistent-coop-scratch"),
                               master_key=SecretStr(b64url(os.urandom(32))),
                               signing_key=SecretStr(b64url(os.urandom(32)))))


def routes(app: FastAPI) -> list[RouteInfo]:
    """Every (method, path) of ``app``'s API routes, sorted; raises ``UndeclaredRoute`` for a gap."""
    found: list[RouteInfo] = []
    for path, route in _api_routes(app):
        if not route.include_in_schema:
            continue
        methods = set(route.methods or ())
        reads_token, admitted = _declared_roles(route)
        if reads_token and admitted is None:
            raise UndeclaredRoute(f"{sorted(methods)} {path} reads the bearer token but declares no "
                                  "roles: build its dependency with api.deps.require_roles or declares_roles")
        protected = admitted is not None
        roles = admitted if admitted is not None else ALL_ROLES
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            found.append(RouteInfo(method=method, path=path, route=route, protected=protected,
                                   roles=roles, any_account=protected and roles == ALL_ROLES))
    return sorted(found, key=lambda info: (info.path, info.method))
