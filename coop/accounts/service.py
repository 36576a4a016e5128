"""Accounts and tokens.

Invariants: the plaintext token exists only in the return value of the call that made it; a revoked
token, or any token of an erased account, never authenticates; every member has a ``MemberKey`` with a
wrapped data key from the moment the account exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql import Select
from sqlmodel import Session, col, select

from coop.accounts.models import Account, ApiToken, MemberKey, Role
from coop.accounts.tokens import hash_token, new_token, same_hash
from coop.kit.crypto import DataKey, Keyring
from coop.kit.errors import Conflict, NotFound, Unauthenticated
from coop.kit.pagination import keyset_page
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    account: Account
    token_id: str

    @property
    def id(self) -> str:
        return self.account.id

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.account.roles)

    def has(self, role: Role) -> bool:
        return role.value in self.account.roles


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str
    token_row: ApiToken


def create_account(session: Session, *, roles: list[Role], display_name: str | None,
                   organisation: str | None, keyring: Keyring,
                   terms_version: str | None = None) -> tuple[Account, IssuedToken]:
    """A new account with its first token (and a data key when it is a member)."""
    account = Account(id=str(uuid.uuid4()), display_name=display_name, organisation=organisation,
                      roles=sorted({role.value for role in roles}), created_at=utcnow(),
                      terms_version=terms_version)
    session.add(account)
    session.flush()
    if Role.MEMBER in roles:
        ensure_member_key(session, account_id=account.id, keyring=keyring)
    issued = issue_token(session, account_id=account.id, label="first token")
    return account, issued


def sign_up_member(session: Session, *, display_name: str | None, accept_terms_version: str,
                   current_terms_version: str, keyring: Keyring) -> tuple[Account, IssuedToken]:
    """Public sign-up: 409 unless the member accepts the current terms."""
    if accept_terms_version != current_terms_version:
        raise Conflict(f"terms version {accept_terms_version!r} is not the current one "
                       f"({current_terms_version!r}); read and accept the current terms")
    return create_account(session, roles=[Role.MEMBER], display_name=display_name, organisation=None,
                          keyring=keyring, terms_version=current_terms_version)


def ensure_member_key(session: Session, *, account_id: str, keyring: Keyring) -> MemberKey:
    """The member's key row, created with a fresh wrapped data key if missing."""
    existing = session.exec(select(MemberKey).where(MemberKey.account_id == account_id)).first()
    if existing is not None:
        return existing
    member_key = MemberKey(account_id=account_id, wrapped_key=keyring.new_wrapped_data_key(owner=account_id),
                           created_at=utcnow())
    session.add(member_key)
    session.flush()
    return member_key


def member_key_for(session: Session, account_id: str) -> MemberKey:
    member_key = session.exec(select(MemberKey).where(MemberKey.account_id == account_id)).first()
    if member_key is None:
        raise NotFound("no member data key for this account")
    return member_key


def data_key_for(member_key: MemberKey, keyring: Keyring) -> DataKey | None:
    """The member's unwrapped data key, or None once it has been shredded."""
    if member_key.wrapped_key is None:
        return None
    return keyring.unwrap_data_key(member_key.wrapped_key, owner=member_key.account_id)


def issue_token(session: Session, *, account_id: str, label: str) -> IssuedToken:
    token = new_token()
    row = ApiToken(id=str(uuid.uuid4()), account_id=account_id, token_hash=hash_token(token), label=label,
                   created_at=utcnow())
    session.add(row)
    session.flush()
    return IssuedToken(token_id=row.id, token=token, token_row=row)


def list_tokens(session: Session, *, account_id: str, limit: int,
                cursor: str | None) -> tuple[list[ApiToken], str | None]:
    """One page of the caller's live tokens, oldest first."""
    query = select(ApiToken).where(ApiToken.account_id == account_id, col(ApiToken.revoked_at).is_(None))
    return keyset_page(session, query, order=[col(ApiToken.created_at), col(ApiToken.id)], limit=limit,
                       cursor=cursor)


def revoke_token(session: Session, *, account_id: str, token_id: str) -> None:
    """Revoke one of the caller's tokens; another account's token id is a 404."""
    row = session.get(ApiToken, token_id)
    if row is None or row.account_id != account_id or row.revoked_at is not None:
        raise NotFound("no such token")
    row.revoked_at = utcnow()
    session.add(row)
    session.flush()


def revoke_all_tokens(session: Session, *, account_id: str) -> int:
    rows = session.exec(select(ApiToken).where(ApiToken.account_id == account_id,
                                               col(ApiToken.revoked_at).is_(None))).all()
    now = utcnow()
    for row in rows:
        row.revoked_at = now
        session.add(row)
    session.flush()
    return len(rows)


# Built once: every authenticated request runs it.
_TOKEN_WITH_ACCOUNT = (select(ApiToken, Account)
                       .join(Account, col(Account.id) == col(ApiToken.account_id))
                       .where(col(ApiToken.token_hash) == sa.bindparam("token_hash")))


def authenticate(session: Session, token: str | None) -> Principal:
    """The principal for a presented token, or ``Unauthenticated``."""
    if not token or len(token) > 200:
        raise Unauthenticated("missing or malformed bearer token")
    digest = hash_token(token)
    found = session.exec(_TOKEN_WITH_ACCOUNT, params={"token_hash": digest}).first()
    if found is None:
        raise Unauthenticated("invalid or revoked token")
    row, account = found
    if not same_hash(row.token_hash, digest) or row.revoked_at is not None or account.erased_at is not None:
        raise Unauthenticated("invalid or revoked token")
    return Principal(account=account, token_id=row.id)


def countable_member_ids(settings: Settings) -> Select[str]:
    """A select of the account ids whose data may count in sealed tables (use it as a subquery).

    Placeholder until verified membership lands: every account that is not erased counts (the sealer
    also requires a live data key and consent). Verified membership replaces this with "verified, or
    ``COOP_REQUIRE_VERIFICATION`` is false", under the same name and signature.
    """
    del settings  # verified membership reads COOP_REQUIRE_VERIFICATION here
    return sa.select(col(Account.id)).where(col(Account.erased_at).is_(None))
