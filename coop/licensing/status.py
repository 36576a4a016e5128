"""A licence's status, computed (never stored): revoked > expired > active."""

from __future__ import annotations

from datetime import datetime

from coop.kit.timeutil import as_utc, utcnow
from coop.licensing.models import Licence

ACTIVE, REVOKED, EXPIRED = "active", "revoked", "expired"


def licence_status(licence: Licence, *, now: datetime | None = None) -> str:
    """``revoked`` once revoked; ``expired`` from ``valid_until`` on; otherwise ``active``."""
    if licence.revoked_at is not None:
        return REVOKED
    if as_utc(now or utcnow()) >= as_utc(licence.valid_until):
        return EXPIRED
    return ACTIVE


def is_paid(licence: Licence) -> bool:
    """A licence may build releases only once its fee is paid in full."""
    return licence.paid_pence >= licence.fee_pence
