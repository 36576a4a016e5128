"""Consent (member): per-purpose consent with signed receipts, collection pause, privacy zones.

Every route needs the ``member`` role (401 without a token, 403 for another account type); a receipt
or zone of another member is a 404.
"""

from __future__ import annotations

from fastapi import Response

from api.deps import KeyringDep, MemberCaller, SessionDep, SettingsDep
from api.params import CursorQuery, LimitQuery
from api.problems import problem_doc
from api.routing import domain_router
from consent import privacy_zones, service
from consent.schemas import (
    CollectionPublic,
    CollectionUpdate,
    ConsentChanged,
    ConsentEventPublic,
    ConsentPublic,
    ConsentUpdate,
    PrivacyZoneCreate,
    PrivacyZoneCreated,
    PrivacyZonePublic,
    SignedReceipt,
)
from consent.zones import ZoneGeometry
from coop.kit.pagination import DEFAULT_LIMIT, Page
from coop.rights.zones import create_zone_and_purge

router = domain_router(tag="consent")


@router.get("/v1/me/consents")
def list_consents(caller: MemberCaller, session: SessionDep) -> Page[ConsentPublic]:
    """The member's current consent, one item per purpose."""
    return service.list_consents(session, member_id=caller.id)


@router.put("/v1/me/consents/{purpose}",
            responses={409: problem_doc("policy_version is not the purpose's current version")})
def set_consent(purpose: str, body: ConsentUpdate, caller: MemberCaller, session: SessionDep,
                keyring: KeyringDep, settings: SettingsDep) -> ConsentChanged:
    """Give (`"given": true`) or withdraw (`false`) one purpose; repeating the current state records nothing."""
    return service.set_consent(session, member_id=caller.id, purpose_code=purpose, given=body.given,
                               policy_version=body.policy_version, keyring=keyring,
                               controller_name=settings.name)


@router.get("/v1/me/consents/events")
def list_consent_events(caller: MemberCaller, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                        cursor: CursorQuery = None) -> Page[ConsentEventPublic]:
    """The member's append-only consent history, oldest first."""
    return service.list_events(session, member_id=caller.id, limit=limit, cursor=cursor)


@router.get("/v1/me/receipts/{receipt_id}")
def read_receipt(receipt_id: str, caller: MemberCaller, session: SessionDep) -> SignedReceipt:
    """A consent receipt and its compact JWS (verify it with the JWKS of `GET /v1/coop`)."""
    return service.get_receipt(session, member_id=caller.id, receipt_id=receipt_id)


@router.put("/v1/me/collection")
def set_collection(body: CollectionUpdate, caller: MemberCaller, session: SessionDep) -> CollectionPublic:
    """Pause (`true`) or resume (`false`) collection; while paused, pings are dropped at ingest."""
    return service.set_collection_paused(session, member_id=caller.id, paused=body.paused)


@router.post("/v1/me/privacy-zones", status_code=201,
             responses={409: problem_doc("The member already holds the maximum number of zones")})
def create_privacy_zone(body: PrivacyZoneCreate, caller: MemberCaller, session: SessionDep,
                        keyring: KeyringDep) -> PrivacyZoneCreated:
    """A circle (radius 50..5000 m) where pings are never stored; stored encrypted, shown only to you."""
    zone = ZoneGeometry(lat=body.lat, lng=body.lng, radius_m=body.radius_m, label=body.label)
    return create_zone_and_purge(session, member_id=caller.id, keyring=keyring, zone=zone)


@router.get("/v1/me/privacy-zones")
def list_privacy_zones(caller: MemberCaller, session: SessionDep, keyring: KeyringDep,
                       limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None) -> Page[PrivacyZonePublic]:
    return privacy_zones.list_zones(session, member_id=caller.id, keyring=keyring, limit=limit, cursor=cursor)


@router.delete("/v1/me/privacy-zones/{zone_id}", status_code=204)
def delete_privacy_zone(zone_id: str, caller: MemberCaller, session: SessionDep) -> Response:
    privacy_zones.delete_zone(session, member_id=caller.id, zone_id=zone_id)
    return Response(status_code=204)
