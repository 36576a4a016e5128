"""Request dependencies: settings, keyring, the request's session, and the caller's principal.

Invariant: authorisation is declared here and only here — ``require_roles(...)`` on a route;
handlers receive a ``Principal`` that already holds one of the roles.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from coop.accounts.roles import Role
from coop.accounts.service import Principal, authenticate
from coop.kit.crypto import Keyring
from coop.kit.errors import Forbidden
from coop.kit.settings import Settings

AuthDependency = TypeVar("AuthDependency", bound=Callable[..., Principal])

bearer_scheme = HTTPBearer(auto_error=False, description="An opaque token from sign-up or /v1/me/tokens")


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_keyring_dep(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


async def get_engine_dep(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_session(request: Request) -> Session:
    """The request's session (one per request, committed by ``CommittingRoute``).

    This and the other trivial dependencies are ``async`` so FastAPI calls them inline instead of
    sending each to the thread pool (they do no I/O)."""
    session = getattr(request.state, "db_session", None)
    if not isinstance(session, Session):
        session = Session(request.app.state.engine, expire_on_commit=False)
        request.state.db_session = session
    return session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
KeyringDep = Annotated[Keyring, Depends(get_keyring_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def token_from_basic_auth(request: Request) -> str | None:
    """The password of an HTTP Basic ``Authorization`` header (OwnTracks sends the token there)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None


REQUIRED_ROLES_ATTRIBUTE = "required_roles"
"""Every authorising dependency carries the roles it admits (empty: any account) under this name, so the
route table can be read back (tests/support/routes.py builds the authorisation matrix from it)."""


def declares_roles(*roles: Role) -> Callable[[AuthDependency], AuthDependency]:
    """Mark an authorising dependency with the roles it admits (any one of them; none = any account)."""

    def mark(dependency: AuthDependency) -> AuthDependency:
        setattr(dependency, REQUIRED_ROLES_ATTRIBUTE, frozenset(roles))
        return dependency

    return mark


def require_roles(*roles: Role) -> Callable[..., Principal]:
    """A dependency: 401 without a valid token, 403 unless the account holds one of ``roles``."""

    @declares_roles(*roles)
    def dependency(session: SessionDep, credentials: CredentialsDep) -> Principal:
        principal = authenticate(session, credentials.credentials if credentials else None)
        if roles and not any(principal.has(role) for role in roles):
            raise Forbidden("this operation needs the role " + " or ".join(r.value for r in roles))
        return principal

    return dependency


AnyAccount = Annotated[Principal, Depends(require_roles())]
MemberCaller = Annotated[Principal, Depends(require_roles(Role.MEMBER))]
ModellerCaller = Annotated[Principal, Depends(require_roles(Role.MODELLER))]
BoardCaller = Annotated[Principal, Depends(require_roles(Role.BOARD))]
TreasurerCaller = Annotated[Principal, Depends(require_roles(Role.TREASURER))]
AdminCaller = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


def _member(session: Session, token: str | None) -> Principal:
    principal = authenticate(session, token)
    if not principal.has(Role.MEMBER):
        raise Forbidden("this operation needs the role member")
    return principal


@declares_roles(Role.MEMBER)
def require_member_bearer_or_basic(request: Request, session: SessionDep,
                                   credentials: CredentialsDep) -> Principal:
    """A member by Bearer token, or by HTTP Basic with the token as password (OwnTracks)."""
    token = credentials.credentials if credentials else token_from_basic_auth(request)
    return _member(session, token)


@declares_roles(Role.MEMBER)
def require_member_bearer_or_query(session: SessionDep, credentials: CredentialsDep,
                                   access_token: Annotated[str | None, Query(
                                       description="The member token, for clients that cannot set "
                                                   "headers (Overland)")] = None) -> Principal:
    """A member by Bearer token or by ``?access_token=`` (Overland)."""
    return _member(session, credentials.credentials if credentials else access_token)


MemberBearerOrBasic = Annotated[Principal, Depends(require_member_bearer_or_basic)]
MemberBearerOrQuery = Annotated[Principal, Depends(require_member_bearer_or_query)]
