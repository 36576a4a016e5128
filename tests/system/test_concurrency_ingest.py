"""Many clients ingesting at once (SQLite and PostgreSQL): overlapping, duplicate batches from several
phones per member, through the native, OwnTracks and Overland endpoints.

Each ping is stored exactly once, and the counts add up: per member, the pings stored are the distinct
ids sent, the sum of ``accepted`` over every answer is that same number, and ``accepted + duplicates``
over every answer is the number of pings sent.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from coop.accounts.models import MemberKey
from coop.accounts.roles import Role
from coop.ingest.models import Ping
from coop.kit.timeutil import utcnow
from tests.support.concurrency import Call, race
from tests.support.factories import Caller, make_account
from tests.support.figures import count
from tests.support.world import PURPOSE, SEED_PING_PLACE, ping_batch

SECTION = "concurrency"
MEMBERS, PHONES, ROUNDS, BATCHES_PER_PHONE, BATCH = 3, 3, 3, 2, 120


def _consenting_member(app: FastAPI, client: TestClient) -> tuple[Caller, list[dict[str, str]]]:
    member = make_account(app, Role.MEMBER)
    version = client.get("/v1/purposes").json()["items"]
    policy = next(p["policy_version"] for p in version if p["code"] == PURPOSE)
    assert client.put(f"/v1/me/consents/{PURPOSE}", json={"given": True, "policy_version": policy},
                      headers=member.headers).status_code == 200
    phones = [member.headers]
    for n in range(PHONES - 1):
        token = client.post("/v1/me/tokens", json={"label": f"phone {n}"}, headers=member.headers).json()["token"]
        phones.append({"Authorization": f"Bearer {token}"})
    return member, phones


def _stored_per_member(app: FastAPI) -> dict[str, int]:
    with Session(app.state.engine) as session:
        rows = session.exec(select(MemberKey.account_id, func.count(col(Ping.id)))
                            .join(Ping, col(Ping.member_no) == col(MemberKey.no))
                            .group_by(col(MemberKey.account_id))).all()
    return dict(rows)


def test_overlapping_duplicate_batches_from_many_phones_store_each_ping_once(app: FastAPI,
                                                                             client: TestClient) -> None:
    rng = random.Random(7)
    members = [_consenting_member(app, client) for _ in range(MEMBERS)]
    base = utcnow() - timedelta(hours=2)
    sent: dict[str, list[str]] = defaultdict(list)
    answered: dict[str, Counter[str]] = defaultdict(Counter)
    for _round in range(ROUNDS):
        calls: list[Call] = []
        owners: list[str] = []
        for member, phones in members:
            for phone in phones:
                for _batch in range(BATCHES_PER_PHONE):
                    start = rng.randrange(0, 3 * BATCH)  # windows of 120 ids out of 480 overlap heavily
                    ids = range(start, start + BATCH)
                    times = [base + timedelta(seconds=n) for n in ids]
                    pings = ping_batch("p", times)
                    for ping, n in zip(pings, ids, strict=True):
                        ping["id"] = f"p-{n}"
                    calls.append(Call("POST", "/v1/pings", phone, json={"pings": pings}))
                    owners.append(member.account_id)
                    sent[member.account_id].extend(ping["id"] for ping in pings)
        answers = race(app, calls, section=SECTION)
        for owner, answer in zip(owners, answers, strict=True):
            assert answer.status == 200, answer
            answered[owner]["accepted"] += answer.body["accepted"]
            answered[owner]["duplicates"] += answer.body["duplicates"]
            assert answer.body["rejected"] == [] and sum(answer.body["dropped"].values()) == 0
    stored = _stored_per_member(app)
    for member, _phones in members:
        distinct = len(set(sent[member.account_id]))
        assert stored[member.account_id] == distinct
        assert answered[member.account_id]["accepted"] == distinct
        assert answered[member.account_id]["accepted"] + answered[member.account_id]["duplicates"] == len(
            sent[member.account_id])
    count(SECTION, "pings sent by racing phones", sum(len(ids) for ids in sent.values()))


def test_the_same_location_through_three_client_protocols_at_once_is_stored_per_protocol_once(
        app: FastAPI, client: TestClient) -> None:
    """OwnTracks and Overland derive ping ids from content: resending the same message from several
    phones at once stores it once per endpoint."""
    member, phones = _consenting_member(app, client)
    lat, lng = SEED_PING_PLACE
    moment = utcnow() - timedelta(minutes=5)
    owntracks = {"_type": "location", "lat": lat, "lon": lng, "tst": int(moment.timestamp()), "acc": 10}
    overland = {"locations": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [lng, lat]},
                               "properties": {"timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                                              "horizontal_accuracy": 10}}]}
    calls = [Call("POST", "/v1/ingest/owntracks", phone, json=owntracks) for phone in phones] * 2
    calls += [Call("POST", "/v1/ingest/overland", phone, json=overland) for phone in phones] * 2
    answers = race(app, calls, section=SECTION)
    assert all(answer.status == 200 for answer in answers), answers
    assert [a.body for a in answers[:len(answers) // 2]] == [[]] * (len(answers) // 2)  # OwnTracks: always []
    overland_counts = [a.body for a in answers[len(answers) // 2:]]
    assert sum(body["accepted"] for body in overland_counts) == 1
    assert sum(body["duplicates"] for body in overland_counts) == len(overland_counts) - 1
    # Each protocol derives its own content id: the OwnTracks message once, the Overland point once.
    assert _stored_per_member(app)[member.account_id] == 2
