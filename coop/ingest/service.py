"""Consent-gated ingest of a batch of pings, and deletion of stored pings.

Invariants:
- Every ping of a batch lands in exactly one of: ``rejected`` (invalid), ``dropped`` (valid but the
  member gives no purpose, is paused, or the ping is in a privacy zone — checked in that order),
  ``duplicates`` (its ``(member, id)`` is already stored or repeats an earlier ping of the batch) or
  ``accepted`` (inserted now).
- Nothing is stored for a dropped ping; stored pings keep only the resolution-10 cell and the time in
  the clear, everything else sealed under the member's data key (``coop.ingest.codec``).
- Services only flush: the request's transaction commits all accepted pings of a batch, or none.
- The member's data key is unwrapped once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from consent.privacy_zones import open_member_zones
from consent.state import gives_any_purpose
from consent.zones import ZoneGeometry, distance_m, in_any_zone
from coop.accounts.models import Account, MemberKey
from coop.accounts.service import data_key_for
from coop.ingest import repository
from coop.ingest.cells import cell_of, zone_cell_ranges, zone_disk
from coop.ingest.clients import overland_locations, owntracks_locations
from coop.ingest.codec import open_ping, seal_pings
from coop.ingest.decoding import decode_json, decode_native_batch, require_batch_size
from coop.ingest.schemas import DroppedCounts, IngestResult, OverlandResult, RejectedPing
from coop.ingest.validation import CleanPing, Rejection, Window, validate_pings
from coop.kit.crypto import DataKey, DecryptionError, Keyring
from coop.kit.errors import Forbidden, InvalidInput
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow


def _window(settings: Settings, now: datetime | None) -> Window:
    return Window.at(now or utcnow(), retention_days=settings.retention_days,
                     max_accuracy_m=settings.max_accuracy_m)


def ingest_native_body(session: Session, *, account: Account, body: bytes, keyring: Keyring,
                       settings: Settings, now: datetime | None = None) -> IngestResult:
    """Decode, validate, gate and store a native ``{"pings": [...]}`` body (422 if not that shape)."""
    clean, rejections = decode_native_batch(body, window=_window(settings, now), max_batch=settings.max_batch)
    return _gate_and_store(session, account=account, clean=clean, rejections=rejections, keyring=keyring)


def ingest_pings(session: Session, *, account: Account, items: Sequence[Any], keyring: Keyring,
                 settings: Settings, now: datetime | None = None) -> IngestResult:
    """Validate, gate and store native-shaped pings (as translated from OwnTracks or Overland)."""
    clean, rejections = validate_pings(items, _window(settings, now))
    return _gate_and_store(session, account=account, clean=clean, rejections=rejections, keyring=keyring)


def ingest_owntracks_body(session: Session, *, account: Account, body: bytes, keyring: Keyring,
                          settings: Settings, now: datetime | None = None) -> IngestResult:
    """An OwnTracks message (or list of messages): locations are ingested, other types ignored."""
    locations = owntracks_locations(decode_json(body))
    if locations is None:
        raise InvalidInput("the body must be one OwnTracks JSON message (an object)")
    require_batch_size(locations, max_batch=settings.max_batch, field="messages", minimum=0)
    return ingest_pings(session, account=account, items=locations, keyring=keyring, settings=settings, now=now)


def ingest_overland_body(session: Session, *, account: Account, body: bytes, keyring: Keyring,
                         settings: Settings, now: datetime | None = None) -> OverlandResult:
    """An Overland batch ``{"locations": [GeoJSON Point Feature, ...]}`` (0..max_batch points)."""
    locations = overland_locations(decode_json(body))
    if locations is None:
        raise InvalidInput('the body must be {"locations": [GeoJSON Point Feature, ...]}')
    require_batch_size(locations, max_batch=settings.max_batch, field="locations", minimum=0)
    outcome = ingest_pings(session, account=account, items=locations, keyring=keyring, settings=settings, now=now)
    return OverlandResult(accepted=outcome.accepted, duplicates=outcome.duplicates, dropped=outcome.dropped,
                          rejected=outcome.rejected)


def _gate_and_store(session: Session, *, account: Account, clean: list[CleanPing], rejections: list[Rejection],
                    keyring: Keyring) -> IngestResult:
    result = IngestResult(
        accepted=0, duplicates=0, dropped=DroppedCounts(),
        rejected=[RejectedPing(index=r.index, id=r.client_id, reason=r.reason) for r in rejections],
    )
    if not clean:
        return result
    if not gives_any_purpose(session, member_id=account.id):
        result.dropped.no_consent = len(clean)
        return result
    if account.collection_paused:
        result.dropped.paused = len(clean)
        return result
    member_no, data_key = _member_no_and_key(session, account_id=account.id, keyring=keyring)
    zones = open_member_zones(session, member_id=account.id, data_key=data_key)
    if zones:
        kept = [ping for ping in clean if not in_any_zone(zones, ping.lat, ping.lng)]
        result.dropped.privacy_zone = len(clean) - len(kept)
        clean = kept
    rows = _sealed_rows(_first_of_each_id(clean), member_no=member_no, data_key=data_key)
    inserted = repository.insert_pings(session, rows)
    result.accepted = inserted
    result.duplicates = len(clean) - inserted
    return result


def _member_no_and_key(session: Session, *, account_id: str, keyring: Keyring) -> tuple[int, DataKey]:
    # A share lock (PostgreSQL; SQLite transactions are serialised anyway): a batch racing an erasure
    # waits for it to commit, then sees the key is gone, so no ping is stored after the member is erased.
    member_key = session.exec(select(MemberKey).where(MemberKey.account_id == account_id)
                              .with_for_update(read=True)).first()
    if member_key is None:
        raise Forbidden("this account has no member data key")
    data_key = data_key_for(member_key, keyring)
    if data_key is None or member_key.no is None:
        raise Forbidden("this member's data key has been destroyed; nothing can be stored")
    return member_key.no, data_key


def _first_of_each_id(pings: list[CleanPing]) -> list[CleanPing]:
    seen: set[str] = set()
    unique: list[CleanPing] = []
    for ping in pings:
        if ping.client_id not in seen:
            seen.add(ping.client_id)
            unique.append(ping)
    return unique


def _sealed_rows(pings: list[CleanPing], *, member_no: int, data_key: DataKey) -> list[repository.PingRow]:
    blobs = seal_pings(data_key, pings, member_no=member_no)
    return [(member_no, ping.client_id, ping.ts_ms, cell_of(ping.lat, ping.lng), blob)
            for ping, blob in zip(pings, blobs, strict=True)]


def delete_pings_in_zone(session: Session, *, member_no: int, zone: ZoneGeometry, data_key: DataKey) -> int:
    """Delete the member's stored pings within the zone's radius; the number deleted.

    Candidates come from the resolution-10 cells around the centre (an over-cover); each is decrypted
    and kept unless its exact position is within ``zone.radius_m``. A blob that does not decrypt is left.
    """
    cells = zone_disk(zone)
    candidates = repository.pings_in_cell_ranges(session, member_no=member_no, ranges=zone_cell_ranges(cells))
    doomed: list[int] = []
    for ping_id, client_id, cell, blob in candidates:
        if cell not in cells:
            continue
        try:
            payload = open_ping(data_key, blob, member_no=member_no, client_id=client_id)
        except (DecryptionError, ValueError):
            continue
        if distance_m(zone.lat, zone.lng, payload.lat, payload.lng) <= zone.radius_m:
            doomed.append(ping_id)
    return repository.delete_pings_by_id(session, doomed)


def delete_member_pings(session: Session, *, member_no: int) -> int:
    """Delete all of a member's stored pings (erasure); the number deleted."""
    return repository.delete_member_pings(session, member_no=member_no)
