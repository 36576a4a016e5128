"""``DELETE /v1/me``: erase a member (GDPR Art. 17) by deletion and crypto-shredding.

Invariants:
- In one transaction: consent is recorded ``withdrawn`` for every given purpose (method ``erasure``,
  before the account is marked erased, so the receipts exist); the member's pings and privacy zones are
  deleted; the data key is destroyed (``member_key.wrapped_key`` NULL, ``shredded_at`` set), so any
  copy of their ciphertext, in a backup or anywhere else, can no longer be opened with anything the
  co-op holds; every token is revoked; ``account.erased_at`` is set and the display name cleared.
- Kept: the account row and ``member_key.no`` (pseudonymous ids), consent events (evidence), ledger
  lines, dividend allocations, payouts and past release contributions (financial records).
- Idempotent: a second call finds nothing left, changes nothing and keeps the first ``erased_at``.
- Serialised with ingest: the account and key rows are locked first (on PostgreSQL ``FOR UPDATE``,
  which also waits for in-flight ping inserts holding a key-share lock on the key row; SQLite's write
  transactions are serial already).
- The audit event (``member.erased``, visible to the board) says that the member was erased and whether
  it was a repeat, nothing else: no count of pings, zones, consents or tokens (how much someone held
  is their data). The counts are in the answer to the member alone.
"""

from __future__ import annotations

from sqlmodel import Session, select

from consent.privacy_zones import delete_member_zones
from consent.service import withdraw_all
from coop.accounts.models import Account, MemberKey
from coop.accounts.service import revoke_all_tokens
from coop.ingest.service import delete_member_pings
from coop.kit.audit import record_audit
from coop.kit.crypto import Keyring
from coop.kit.errors import NotFound
from coop.kit.timeutil import rfc3339, utcnow
from coop.rights.schemas import ErasurePublic

ERASED_ACTION = "member.erased"


def _locked_account(session: Session, member_id: str) -> Account:
    account = session.exec(select(Account).where(Account.id == member_id).with_for_update()).first()
    if account is None:
        raise NotFound("no such member")
    return account


def _locked_member_key(session: Session, member_id: str) -> MemberKey | None:
    return session.exec(select(MemberKey).where(MemberKey.account_id == member_id).with_for_update()).first()


def _set_secure_delete(session: Session, value: int | None) -> int | None:
    """SQLite only: set ``PRAGMA secure_delete`` (deleted content overwritten with zeros, so no shredded
    key is left in free space) and return the connection's previous value; None elsewhere."""
    connection = session.connection()
    if connection.dialect.name != "sqlite" or value is None:
        return None
    previous = connection.exec_driver_sql("PRAGMA secure_delete").scalar()
    connection.exec_driver_sql(f"PRAGMA secure_delete = {int(value)}")
    return None if previous is None else int(previous)


def erase_member(session: Session, *, member_id: str, keyring: Keyring,
                 controller_name: str | None = None) -> ErasurePublic:
    """Erase the member (see the module docstring); safe to call again."""
    account = _locked_account(session, member_id)
    member_key = _locked_member_key(session, member_id)
    previous = _set_secure_delete(session, 1)
    result = _erase(session, account=account, member_key=member_key, keyring=keyring,
                    controller_name=controller_name)
    _set_secure_delete(session, previous)  # after a failure the connection keeps zeroing: harmless
    return result


def _erase(session: Session, *, account: Account, member_key: MemberKey | None, keyring: Keyring,
           controller_name: str | None) -> ErasurePublic:
    member_id = account.id
    now = utcnow()

    withdrawn = withdraw_all(session, member_id=member_id, keyring=keyring, controller_name=controller_name)
    pings_deleted = delete_member_pings(session, member_no=member_key.no) \
        if member_key is not None and member_key.no is not None else 0
    zones_deleted = delete_member_zones(session, member_id=member_id)
    if member_key is not None and (member_key.wrapped_key is not None or member_key.shredded_at is None):
        member_key.wrapped_key = None
        member_key.shredded_at = member_key.shredded_at or now
        session.add(member_key)
    tokens_revoked = revoke_all_tokens(session, account_id=member_id)

    first_erasure = account.erased_at is None
    if first_erasure:
        account.erased_at = now
    account.display_name = None
    session.add(account)
    result = ErasurePublic(pings_deleted=pings_deleted, privacy_zones_deleted=zones_deleted,
                           consents_withdrawn=len(withdrawn), tokens_revoked=tokens_revoked,
                           erased_at=rfc3339(account.erased_at or now))
    if first_erasure or pings_deleted or zones_deleted or withdrawn or tokens_revoked:
        record_audit(session, actor_id=member_id, action=ERASED_ACTION, subject_type="account",
                     subject_id=member_id,
                     detail={"repeat": not first_erasure})
    session.flush()
    return result
