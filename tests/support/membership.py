"""Verified membership for tests: invitation codes, sign-ups with and without them, who counts, and a
staged sybil attack that the sealed-table tests can seal and check end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from coop.accounts.service import countable_member_ids
from coop.kit.db import session_scope
from tests.support.factories import Caller
from tests.support.world import PURPOSE, SEED_PING_PLACE, ping_batch


def issue_codes(client: TestClient, admin: Caller, count: int, **extra: Any) -> list[str]:
    """``count`` codes through ``POST /v1/invitations``."""
    response = client.post("/v1/invitations", json={"count": count, **extra}, headers=admin.headers)
    assert response.status_code == 201, response.text
    codes: list[str] = response.json()["codes"]
    return codes


def sign_up(client: TestClient, *, code: str | None = None, display_name: str = "A resident") -> Response:
    """``POST /v1/members`` with the current terms (and ``code`` when given); the raw answer."""
    terms = client.get("/v1/coop").json()["terms_version"]
    body: dict[str, Any] = {"display_name": display_name, "accept_terms_version": terms}
    if code is not None:
        body["invitation_code"] = code
    response: Response = client.post("/v1/members", json=body)
    return response


def joined(response: Response) -> Caller:
    assert response.status_code == 201, response.text
    body = response.json()
    return Caller(account_id=body["member_id"], token=body["token"], token_id=body["token_id"])


def countable_ids(app: FastAPI) -> set[str]:
    """The account ids ``countable_member_ids`` admits now, under the app's settings."""
    with session_scope(app.state.engine) as session:
        return set(session.execute(countable_member_ids(app.state.settings)).scalars())


def give_consent_and_ping(client: TestClient, member: Caller, *, prefix: str, times: list[datetime],
                          place: tuple[float, float] = SEED_PING_PLACE) -> None:
    """Give ``PURPOSE`` and store pings at ``place`` at ``times`` (every one accepted)."""
    policy = next(p["policy_version"] for p in client.get("/v1/purposes").json()["items"] if p["code"] == PURPOSE)
    given = client.put(f"/v1/me/consents/{PURPOSE}", json={"given": True, "policy_version": policy},
                       headers=member.headers)
    assert given.status_code == 200, given.text
    stored = client.post("/v1/pings", json={"pings": ping_batch(prefix, times, place=place)}, headers=member.headers)
    assert stored.status_code == 200 and stored.json()["accepted"] == len(times), stored.text


@dataclass(frozen=True)
class SybilAttack:
    """A verified victim alone in a cell, and ``k - 1`` unverified sign-ups pinging beside them."""

    victim: Caller
    sybils: list[Caller]
    place: tuple[float, float]
    times: list[datetime]


def stage_sybil_attack(client: TestClient, admin: Caller, *, k: int, times: list[datetime],
                       place: tuple[float, float] = SEED_PING_PLACE) -> SybilAttack:
    """The attack of issue 15: the victim joins with a code; ``k - 1`` accounts sign up without one (the
    public route) and ping in the victim's cell at the same times. Sealing the bucket must not publish
    the cell: the sybils are unverified, so the cell holds one countable member."""
    [code] = issue_codes(client, admin, 1)
    victim = joined(sign_up(client, code=code, display_name="Victim"))
    give_consent_and_ping(client, victim, prefix="victim", times=times, place=place)
    sybils = []
    for n in range(k - 1):
        sybil = joined(sign_up(client, display_name=f"Sybil {n}"))
        give_consent_and_ping(client, sybil, prefix=f"sybil-{n}", times=times, place=place)
        sybils.append(sybil)
    return SybilAttack(victim=victim, sybils=sybils, place=place, times=times)
