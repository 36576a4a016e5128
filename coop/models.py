"""Imports every table so that ``SQLModel.metadata`` is complete (Alembic and the schema test use it)."""

from __future__ import annotations

from sqlmodel import SQLModel

from consent.models import ConsentEvent, PrivacyZone, Purpose
from coop.accounts.models import Account, ApiToken, MemberKey
from coop.ingest.models import Ping
from coop.kit.audit import AuditEvent
from coop.kit.idempotency_models import IdempotencyRecord
from coop.ledger.models import (
    Dividend,
    DividendAllocation,
    LedgerAccount,
    LedgerEntry,
    LedgerPosting,
    Payout,
)
from coop.licensing.models import Licence, LicencePayment, LicenceRequest, Vote
from coop.releases.models import Release, ReleaseContribution, ReleaseDownload
from coop.tables.models import SealedBucket, SealedCell, SealedContribution, SealedPair, TableFamily

metadata = SQLModel.metadata

__all__ = [
    "Account", "ApiToken", "AuditEvent", "ConsentEvent", "Dividend", "DividendAllocation",
    "IdempotencyRecord", "LedgerAccount", "LedgerEntry", "LedgerPosting", "Licence", "LicencePayment",
    "LicenceRequest", "MemberKey", "Payout", "Ping", "PrivacyZone", "Purpose", "Release",
    "ReleaseContribution", "ReleaseDownload", "SealedBucket", "SealedCell", "SealedContribution", "SealedPair",
    "TableFamily", "Vote", "metadata",
]
