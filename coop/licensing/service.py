"""Licence requests and board votes.

Invariants:
- A request moves only ``submitted -> approved | rejected | withdrawn``; every change happens under
  the request's row lock (``repository.lock_request``), so concurrent votes and withdrawals are
  serialised, and a vote is never accepted on a closed request.
- One vote per board member per request (checked, and backed by ``uq_vote_request_voter``); the
  requester never votes on their own request (403); a vote declaring a conflict of interest counts
  as an abstention.
- When counted approvals reach ``settings.board_quorum`` the request is approved and its licence
  issued in the same transaction (``issuance.issue_licence``); counted rejections reaching the
  quorum reject it.
- A modeller sees only their own requests (another's is a 404); the board sees all.
- Every decision is in the audit trail (``coop.kit.audit``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from consent.models import Purpose
from coop.accounts.models import Role
from coop.accounts.service import Principal
from coop.kit.audit import record_audit
from coop.kit.crypto import Keyring
from coop.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from coop.licensing import repository
from coop.licensing.issuance import issue_licence
from coop.licensing.models import LicenceRequest, Vote
from coop.licensing.schemas import (
    DatasetSpec,
    DatasetSpecCreate,
    Decision,
    LicenceRequestCreate,
    LicenceRequestPublic,
    RequestPrivacy,
    RequestStatus,
    VoteCast,
    VoteCreate,
    VotePublic,
)
from coop.tables import service as tables

SUBMITTED, APPROVED, REJECTED, WITHDRAWN = "submitted", "approved", "rejected", "withdrawn"


def _invalid(loc: list[str | int], message: str) -> InvalidInput:
    return InvalidInput(f"{'.'.join(str(p) for p in loc)}: {message}",
                        errors=[{"loc": loc, "msg": message, "type": "value_error"}])


def effective_dataset(spec: DatasetSpecCreate, *, settings: Settings) -> DatasetSpec:
    """The spec with ``k`` checked against (and defaulting to) the co-op's k floor.

    The resolution range needs no check here: the schema bounds it by the same constants that
    ``Settings.coarsest_resolution`` and ``Settings.finest_resolution`` return.
    """
    if spec.kind not in tables.accepted_kinds():
        raise _invalid(["body", "dataset", "kind"], f"kind {spec.kind!r} is not offered yet; offered: "
                       + ", ".join(sorted(tables.accepted_kinds())))
    k = settings.k_floor if spec.k is None else spec.k
    if k < settings.k_floor:
        raise _invalid(["body", "dataset", "k"], f"k must be at least the co-op's k floor ({settings.k_floor})")
    return DatasetSpec(**spec.model_dump(exclude={"k"}), k=k)


def counted_as(vote: Vote) -> Decision:
    """How a vote counts towards the quorum: a declared conflict is an abstention."""
    return "abstain" if vote.conflict_of_interest else cast(Decision, vote.decision)


def vote_public(vote: Vote) -> VotePublic:
    return VotePublic(vote_id=vote.id, voter_id=vote.voter_id, decision=cast(Decision, vote.decision),
                      counted_as=counted_as(vote), comment=vote.comment,
                      conflict_of_interest=vote.conflict_of_interest, at=vote.at)


def _privacy(session: Session, request: LicenceRequest, *, licence_id: str | None,
             settings: Settings) -> RequestPrivacy:
    """The request's cost: once approved, its licence's family; before, what approving it now costs."""
    cost = tables.privacy_cost(session, purpose_code=request.purpose_code, dataset=request.dataset,
                               settings=settings, licence_id=licence_id)
    return RequestPrivacy(family_id=cost.family_id, opens_family=cost.opens_family,
                          epsilon_per_day=cost.epsilon_per_day,
                          remaining_epsilon_per_day=cost.remaining_epsilon_per_day)


def _request_public(request: LicenceRequest, *, votes: list[Vote], licence_id: str | None,
                    privacy: RequestPrivacy) -> LicenceRequestPublic:
    return LicenceRequestPublic(
        request_id=request.id, status=cast(RequestStatus, request.status),
        requester_id=request.requester_id, title=request.title, purpose=request.purpose_code,
        organisation=request.organisation, public_benefit=request.public_benefit,
        description=request.description, dataset=DatasetSpec.model_validate(request.dataset),
        duration_days=request.duration_days, fee_pence=request.fee_pence, created_at=request.created_at,
        decided_at=request.decided_at, votes=[vote_public(v) for v in votes], licence_id=licence_id,
        privacy=privacy)


def _publish(session: Session, requests: list[LicenceRequest], settings: Settings) -> list[LicenceRequestPublic]:
    ids = [r.id for r in requests]
    votes = repository.votes_by_request(session, ids)
    licences = repository.licence_ids_by_request(session, ids)
    return [_request_public(r, votes=votes.get(r.id, []), licence_id=licences.get(r.id),
                            privacy=_privacy(session, r, licence_id=licences.get(r.id), settings=settings))
            for r in requests]


def _visible(request: LicenceRequest | None, caller: Principal) -> LicenceRequest:
    if request is None or not (caller.has(Role.BOARD) or request.requester_id == caller.id):
        raise NotFound("no such licence request")
    return request


def submit_request(session: Session, *, caller: Principal, body: LicenceRequestCreate,
                   settings: Settings) -> LicenceRequestPublic:
    """A modeller's new request, ``submitted``, with its dataset checked against the settings."""
    if session.get(Purpose, body.purpose) is None:
        raise _invalid(["body", "purpose"], f"unknown purpose {body.purpose!r}; see GET /v1/purposes")
    dataset = effective_dataset(body.dataset, settings=settings)
    request = LicenceRequest(
        id=str(uuid.uuid4()), requester_id=caller.id, title=body.title, purpose_code=body.purpose,
        organisation=body.organisation, public_benefit=body.public_benefit, description=body.description,
        dataset=dataset.model_dump(mode="json"), duration_days=body.duration_days, fee_pence=body.fee_pence,
        status=SUBMITTED, created_at=utcnow())
    session.add(request)
    session.flush()
    record_audit(session, actor_id=caller.id, action="licence_request.submitted",
                 subject_type="licence_request", subject_id=request.id,
                 detail={"title": request.title, "purpose": request.purpose_code,
                         "organisation": request.organisation, "dataset": request.dataset,
                         "duration_days": request.duration_days, "fee_pence": request.fee_pence})
    return _publish(session, [request], settings)[0]


def list_requests(session: Session, *, caller: Principal, status: str | None, limit: int,
                  cursor: str | None, settings: Settings) -> tuple[list[LicenceRequestPublic], str | None]:
    """Board: every request; anyone else: their own."""
    requester_id = None if caller.has(Role.BOARD) else caller.id
    rows, next_cursor = repository.page_requests(session, requester_id=requester_id, status=status,
                                                 limit=limit, cursor=cursor)
    return _publish(session, rows, settings), next_cursor


def get_request(session: Session, *, caller: Principal, request_id: str, settings: Settings) -> LicenceRequestPublic:
    request = _visible(session.get(LicenceRequest, request_id), caller)
    return _publish(session, [request], settings)[0]


def withdraw_request(session: Session, *, caller: Principal, request_id: str,
                     settings: Settings) -> LicenceRequestPublic:
    """Only the modeller who made the request, and only while it is ``submitted``."""
    request = _visible(repository.lock_request(session, request_id), caller)
    if request.requester_id != caller.id:
        raise Forbidden("only the modeller who made a request may withdraw it")
    if request.status != SUBMITTED:
        raise Conflict(f"the request is {request.status}; only a submitted request can be withdrawn")
    request.status, request.decided_at = WITHDRAWN, utcnow()
    session.add(request)
    session.flush()
    record_audit(session, actor_id=caller.id, action="licence_request.withdrawn",
                 subject_type="licence_request", subject_id=request.id)
    return _publish(session, [request], settings)[0]


def cast_vote(session: Session, *, caller: Principal, request_id: str, body: VoteCreate,
              settings: Settings, keyring: Keyring, now: datetime | None = None) -> VoteCast:
    """Record a board member's vote; decide the request (and issue its licence) at the quorum.

    ``now`` defaults to the current time (simulations such as the demo pass their own clock).
    """
    request = repository.lock_request(session, request_id)
    if request is None:
        raise NotFound("no such licence request")
    if request.requester_id == caller.id:
        raise Forbidden("you made this request, so you cannot vote on it")
    if request.status != SUBMITTED:
        raise Conflict(f"the request is {request.status}; voting is closed")
    if repository.has_voted(session, request_id=request.id, voter_id=caller.id):
        raise Conflict("you have already voted on this request")
    now = now or utcnow()
    vote = Vote(id=str(uuid.uuid4()), request_id=request.id, voter_id=caller.id, decision=body.decision,
                comment=body.comment, conflict_of_interest=body.conflict_of_interest, at=now)
    session.add(vote)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent duplicate that slipped past the lock
        raise Conflict("you have already voted on this request") from exc
    record_audit(session, actor_id=caller.id, action="licence_request.vote_cast",
                 subject_type="licence_request", subject_id=request.id,
                 detail={"vote_id": vote.id, "decision": vote.decision, "counted_as": counted_as(vote),
                         "conflict_of_interest": vote.conflict_of_interest, "comment": vote.comment})
    licence_id = _decide_if_quorate(session, request=request, at=now, settings=settings, keyring=keyring)
    return VoteCast(**vote_public(vote).model_dump(), request_id=request.id,
                    request_status=cast(RequestStatus, request.status), licence_id=licence_id)


def _decide_if_quorate(session: Session, *, request: LicenceRequest, at: datetime, settings: Settings,
                       keyring: Keyring) -> str | None:
    """Approve (issuing the licence) or reject ``request`` once the quorum is reached."""
    votes = repository.votes_by_request(session, [request.id]).get(request.id, [])
    approvers = [v.voter_id for v in votes if counted_as(v) == "approve"]
    rejections = sum(1 for v in votes if counted_as(v) == "reject")
    quorum = settings.board_quorum
    if len(approvers) < quorum and rejections < quorum:
        return None
    request.status = APPROVED if len(approvers) >= quorum else REJECTED
    request.decided_at = at
    session.add(request)
    session.flush()
    record_audit(session, actor_id=None, action=f"licence_request.{request.status}",
                 subject_type="licence_request", subject_id=request.id,
                 detail={"approvals": len(approvers), "rejections": rejections, "quorum": quorum})
    if request.status == REJECTED:
        return None
    licence = issue_licence(session, request=request, approved_by=approvers, at=at, settings=settings,
                            keyring=keyring)
    return licence.id
