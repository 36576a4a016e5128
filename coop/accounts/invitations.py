"""Invitation codes: single-use, expiring, human-typable, stored only as a hash.

Invariants:
- A code is 16 symbols of Crockford's base32 (80 random bits from ``secrets``), shown as four groups
  of four (``7KQ2-M9XD-4HTB-WC3E``). Typing is forgiving: case, spaces and hyphens are ignored, and
  ``O``/``I``/``L`` read as ``0``/``1``/``1``. The plaintext exists only in the answer of the call that
  issued it; the table holds the SHA-256 of the canonical form.
- Redemption is one conditional ``UPDATE ... WHERE used_at IS NULL AND expires_at > now``: of two
  sign-ups racing one code exactly one changes the row (PostgreSQL re-checks the condition after the
  first commits; SQLite writers are serial) and the other is refused, so a code admits one member.
- Unknown, malformed, used and expired codes are refused alike (one message), so a guesser learns
  nothing about which codes exist.
- The audit trail records that codes were issued and how many, never the codes, hashes or the note.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from coop.accounts.models import Invitation
from coop.kit.audit import record_audit
from coop.kit.errors import InvalidInput
from coop.kit.timeutil import utcnow

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: no I, L, O or U, so nothing is misread."""
GROUPS, GROUP_SIZE = 4, 4
CODE_SYMBOLS = GROUPS * GROUP_SIZE
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_IGNORED = str.maketrans("", "", " -\t")

MAX_CODES_PER_CALL = 1000
DEFAULT_VALID_DAYS = 30
ISSUED_ACTION = "invitations.issued"


class InvalidInvitation(InvalidInput):
    """422: the code is unknown, malformed, already used or expired (deliberately not saying which)."""

    title, type_slug = "Invalid invitation code", "invalid-invitation"

    def __init__(self) -> None:
        super().__init__("the invitation code is unknown, already used or expired; ask the co-op for a new one")


@dataclass(frozen=True)
class IssuedInvitations:
    batch_id: str
    codes: list[str]
    expires_at: datetime


def new_code() -> str:
    """A fresh code in its display form, ``XXXX-XXXX-XXXX-XXXX``: 80 bits from ``secrets``, five a symbol."""
    bits = int.from_bytes(secrets.token_bytes(CODE_SYMBOLS * 5 // 8))
    symbols = "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in range(CODE_SYMBOLS))
    return "-".join(symbols[i:i + GROUP_SIZE] for i in range(0, CODE_SYMBOLS, GROUP_SIZE))


def canonical_code(typed: str) -> str | None:
    """The 16 symbols of a typed code, or None when it cannot be a code at all."""
    symbols = typed.translate(_IGNORED).upper().translate(_READ_AS)
    if len(symbols) != CODE_SYMBOLS or any(symbol not in ALPHABET for symbol in symbols):
        return None
    return symbols


def hash_code(canonical: str) -> str:
    return hashlib.sha256(b"coop-invitation:" + canonical.encode("ascii")).hexdigest()


def issue_invitations(session: Session, *, created_by: str | None, count: int, note: str | None,
                      valid_days: int = DEFAULT_VALID_DAYS, now: datetime | None = None) -> IssuedInvitations:
    """``count`` new codes valid for ``valid_days``; ``created_by`` None means the command line."""
    if not 1 <= count <= MAX_CODES_PER_CALL:
        raise InvalidInput(f"count must be 1..{MAX_CODES_PER_CALL}")
    if not 1 <= valid_days <= 365:
        raise InvalidInput("valid_days must be 1..365")
    now = now or utcnow()
    expires_at = now + timedelta(days=valid_days)
    batch_id = str(uuid.uuid4())
    codes = [new_code() for _ in range(count)]
    session.execute(sa.insert(Invitation), [
        {"id": str(uuid.uuid4()), "batch_id": batch_id, "code_hash": hash_code(code.replace("-", "")),
         "created_by": created_by, "note": note, "created_at": now, "expires_at": expires_at}
        for code in codes
    ])
    record_audit(session, actor_id=created_by, action=ISSUED_ACTION, subject_type="invitation_batch",
                 subject_id=batch_id, detail={"count": count})
    session.flush()
    return IssuedInvitations(batch_id=batch_id, codes=codes, expires_at=expires_at)


_FIND_BY_HASH = select(col(Invitation.id), col(Invitation.code_hash)).where(
    col(Invitation.code_hash) == sa.bindparam("code_hash"))


def redeem_invitation(session: Session, *, code: str, member_id: str, now: datetime) -> None:
    """Mark the code used by ``member_id`` (an account flushed in this session), or ``InvalidInvitation``."""
    canonical = canonical_code(code)
    if canonical is None:
        raise InvalidInvitation()
    digest = hash_code(canonical)
    found = session.exec(_FIND_BY_HASH, params={"code_hash": digest}).first()
    if found is None:
        raise InvalidInvitation()
    invitation_id, stored_hash = found
    if not hmac.compare_digest(stored_hash.encode(), digest.encode()):
        raise InvalidInvitation()
    claimed = session.execute(
        sa.update(Invitation)
        .where(col(Invitation.id) == invitation_id, col(Invitation.used_at).is_(None),
               col(Invitation.expires_at) > now)
        .values(used_at=now, used_by=member_id))
    if getattr(claimed, "rowcount", 0) != 1:
        raise InvalidInvitation()
