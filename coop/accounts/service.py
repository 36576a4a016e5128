"""Accounts and tokens.

Invariants: the plaintext token exists only in the return value of the call that made it; a revoked
token, or any token of an erased account, never authenticates; every member has a ``MemberKey`` with a
wrapped data key from the moment the account exists.

Verified membership (one person, one member): an account created by an admin is verified at creation;
a public sign-up is verified only by redeeming a valid invitation code in the same transaction, or later
by an admin (``verify_member``). Verification is never undone. ``countable_member_ids`` is the one
definition of whose data may count in sealed tables.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.sql import Select
from sqlmodel import Session, col, select

from coop.accounts.invitations import redeem_invitation
from coop.accounts.models import Account, ApiToken, MemberKey
from coop.accounts.roles import Role
from coop.accounts.tokens import hash_token, new_token, same_hash
from coop.kit.audit import record_audit
from coop.kit.crypto import DataKey, Keyring
from coop.kit.errors import Conflict, NotFound, Unauthenticated
from coop.kit.pagination import keyset_page
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow

VERIFIED_ACTION = "member.verified"


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
                   organisation: str | None, keyring: Keyring, terms_version: str | None = None,
                   verified: bool = True) -> tuple[Account, IssuedToken]:
    """A new account with its first token (and a data key when it is a member).

    Verified at creation unless ``verified`` is False (only the public sign-up passes False): an admin
    creating an account vouches for the person."""
    now = utcnow()
    account = Account(id=str(uuid.uuid4()), display_name=display_name, organisation=organisation,
                      roles=sorted({role.value for role in roles}), created_at=now,
                      terms_version=terms_version, verified_at=now if verified else None)
    session.add(account)
    session.flush()
    if Role.MEMBER in roles:
        ensure_member_key(session, account_id=account.id, keyring=keyring)
    issued = issue_token(session, account_id=account.id, label="first token")
    return account, issued


def sign_up_member(session: Session, *, display_name: str | None, accept_terms_version: str,
                   current_terms_version: str, keyring: Keyring,
                   invitation_code: str | None = None) -> tuple[Account, IssuedToken]:
    """Public sign-up: 409 unless the member accepts the current terms; with ``invitation_code`` the
    member is verified at once, and a code that is unknown, used or expired is
    ``InvalidInvitation`` (422), raised after the account was flushed: the caller's transaction must
    roll back (the request's does), so a refused sign-up records nothing."""
    if accept_terms_version != current_terms_version:
        raise Conflict(f"terms version {accept_terms_version!r} is not the current one "
                       f"({current_terms_version!r}); read and accept the current terms")
    account, issued = create_account(session, roles=[Role.MEMBER], display_name=display_name,
                                     organisation=None, keyring=keyring, terms_version=current_terms_version,
                                     verified=invitation_code is not None)
    if invitation_code is not None:
        # The account is written verified first (one INSERT, no UPDATE); a refused code rolls it back.
        redeem_invitation(session, code=invitation_code, member_id=account.id, now=account.created_at)
    return account, issued


def is_verified(account: Account, settings: Settings) -> bool:
    """Whether the account counts as one verified person (always, when verification is not required)."""
    return account.verified_at is not None or not settings.require_verification


def verify_member(session: Session, *, member_id: str, verified_by: str,
                  now: datetime | None = None) -> datetime:
    """Mark a member verified (an admin vouches for them) and return ``verified_at``.

    Idempotent: a verified member keeps the first ``verified_at`` and no second audit event is written
    (the row is locked first, so two admins at once also write one). 404 for an unknown id, an account
    that is not a member, or an erased member."""
    account = session.exec(select(Account).where(Account.id == member_id).with_for_update()).first()
    if account is None or Role.MEMBER.value not in account.roles or account.erased_at is not None:
        raise NotFound("no such member")
    if account.verified_at is not None:
        return account.verified_at
    verified_at = account.verified_at = now or utcnow()
    session.add(account)
    record_audit(session, actor_id=verified_by, action=VERIFIED_ACTION, subject_type="account",
                 subject_id=member_id, detail={"method": "admin"})
    session.flush()
    return verified_at


def countable_member_ids(settings: Settings) -> Select[str]:
    """A select of the account ids whose data may count in sealed tables; use it as a subquery
    (``Account.id IN countable_member_ids(settings)``), never materialised.

    An account counts when it is not erased and it is verified, or when ``COOP_REQUIRE_VERIFICATION``
    is false. It says nothing about consent, pausing or data keys: the sealer applies those itself.
    Only members have pings, so it does not filter on roles (roles are a JSON list in the table).
    """
    query = sa.select(col(Account.id)).where(col(Account.erased_at).is_(None))
    if settings.require_verification:
        query = query.where(col(Account.verified_at).is_not(None))
    return query


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
