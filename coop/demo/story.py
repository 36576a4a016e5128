"""The demo story, told through the service layer exactly as the API would call it.

Residents join with the single-use invitation codes the admin issued (so every one is verified, as
in a real co-op) and choose their consent; their phones send a week of pings (some paused, some with a
privacy zone at home, some never consenting); a modeller asks for three licences (presence, od and
stays, each opening its table family), two board members approve each, the treasurer records the fees,
the co-op seals the week's tables, the modeller builds a release of each from them and the treasurer
declares a dividend.

Invariants: deterministic for a seed (apart from ids, keys and signatures); every step goes through the
same service functions as the HTTP API, so the consent gate, sealing (noise, threshold, budget) and the ledger
rules all apply.
The story runs on a simulated clock (the services accept one): yesterday afternoon the board approves
(opening the licence's table family), the treasurer receives the fee, the co-op seals every bucket that
is due by then, and the release is built from those sealed tables; so the demo week ends early enough
for its last day to be past the sealing lateness (``COOP_SEAL_LATENESS_HOURS``) yesterday, residents join
the day before it, and today the treasurer can declare the dividend of the period just ended, as the
API's own rules require.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from consent.service import set_collection_paused, set_consent
from consent.zones import ZoneGeometry
from coop.accounts.invitations import MAX_CODES_PER_CALL, issue_invitations
from coop.accounts.models import Account
from coop.accounts.roles import Role
from coop.accounts.service import Principal, create_account, sign_up_member
from coop.demo.population import Resident, make_population, pings_for_day
from coop.ingest.service import ingest_pings
from coop.kit.crypto import Keyring
from coop.kit.db import session_scope
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from coop.ledger.dividends import declare_dividend
from coop.ledger.postings import record_licence_payment
from coop.licensing.schemas import DatasetSpecCreate, LicenceRequestCreate, VoteCreate
from coop.licensing.service import cast_vote, submit_request
from coop.releases.builder import BuildContext, build_release
from coop.releases.models import Release
from coop.releases.service import request_release
from coop.rights.zones import create_zone_and_purge
from coop.tables.service import seal_due
from migrations.seed import POLICY_VERSION

LICENCE_FEE_PENCE = 250_000
PAUSED_DAYS = (2, 3)
"""Days of the week (0-based) on which the 'pauses' residents have collection paused."""


@dataclass
class StaffTokens:
    admin: str = ""
    board: list[str] = field(default_factory=list)
    treasurer: str = ""
    modeller: str = ""
    member: str = ""
    """A consenting member with a statement to look at."""


@dataclass
class DemoResult:
    residents: int = 0
    week_start: date = date.min
    week_end: date = date.min
    ingest: Counter[str] = field(default_factory=Counter)
    licence_id: str = ""
    release_id: str = ""
    """The presence licence and release (the headline ones)."""
    licences: dict[str, str] = field(default_factory=dict)
    """Table kind -> licence id (presence, od, stays)."""
    releases: dict[str, str] = field(default_factory=dict)
    """Table kind -> release id."""
    other_release_rows: dict[str, int] = field(default_factory=dict)
    """Rows of the od and stays releases (filled when the files are written)."""
    release_rows_by_resolution: dict[int, int] = field(default_factory=dict)
    min_members: int = 0
    dividend: dict[str, int | str] = field(default_factory=dict)
    tokens: StaffTokens = field(default_factory=StaffTokens)
    member_id: str = ""


def _principal(session: Session, account_id: str, token_id: str) -> Principal:
    account = session.get(Account, account_id)
    assert account is not None
    return Principal(account=account, token_id=token_id)


def _staff(session: Session, *, keyring: Keyring, result: DemoResult) -> dict[str, tuple[str, str]]:
    """Admin, three board members, a treasurer and a modeller; returns role -> (account id, token id)."""
    people = {
        "admin": ([Role.ADMIN], "Co-op administrator", None),
        "board-1": ([Role.BOARD], "Amara Okafor (board)", "LCR Residents' Data Co-op"),
        "board-2": ([Role.BOARD], "Gareth Jones (board)", "LCR Residents' Data Co-op"),
        "board-3": ([Role.BOARD], "Siobhan Byrne (board)", "LCR Residents' Data Co-op"),
        "treasurer": ([Role.TREASURER], "Priya Shah (treasurer)", "LCR Residents' Data Co-op"),
        "modeller": ([Role.MODELLER], "Tom Ellis (transport modeller)", "Merseytravel modelling unit"),
    }
    ids = {}
    for key, (roles, name, organisation) in people.items():
        account, issued = create_account(session, roles=roles, display_name=name, organisation=organisation,
                                         keyring=keyring)
        ids[key] = (account.id, issued.token_id)
        if key.startswith("board"):
            result.tokens.board.append(issued.token)
        else:
            setattr(result.tokens, key, issued.token)
    return ids


def _invitation_codes(session: Session, *, admin_id: str, count: int) -> list[str]:
    """``count`` codes from the admin, issued in batches of at most 1000 (the API's limit per call)."""
    codes: list[str] = []
    while len(codes) < count:
        batch = min(MAX_CODES_PER_CALL, count - len(codes))
        codes += issue_invitations(session, created_by=admin_id, count=batch, note="demo residents").codes
    return codes


def _join(session: Session, *, resident: Resident, keyring: Keyring, settings: Settings,
          joined_at: datetime, invitation_code: str) -> tuple[Account, str]:
    account, issued = sign_up_member(session, display_name=resident.display_name,
                                     accept_terms_version=settings.terms_version,
                                     current_terms_version=settings.terms_version, keyring=keyring,
                                     invitation_code=invitation_code)
    for purpose in resident.purposes:
        set_consent(session, member_id=account.id, purpose_code=purpose, given=True,
                    policy_version=POLICY_VERSION, keyring=keyring, controller_name=settings.name, at=joined_at)
    if resident.privacy_zone_at_home:
        create_zone_and_purge(session, member_id=account.id, keyring=keyring,
                    zone=ZoneGeometry(lat=resident.home[0], lng=resident.home[1], radius_m=200, label="Home"))
    return account, issued.token


def _withdraw_midweek(session: Session, *, account: Account, keyring: Keyring, settings: Settings,
                      at: datetime) -> None:
    set_consent(session, member_id=account.id, purpose_code="transport-planning", given=False,
                policy_version=POLICY_VERSION, keyring=keyring, controller_name=settings.name, at=at)


def sealing_time(today: date) -> datetime:
    """When the demo co-op seals its tables: yesterday afternoon (after the approval and payment)."""
    return datetime.combine(today - timedelta(days=1), time(17), tzinfo=UTC)


def demo_week_end(today: date, settings: Settings) -> date:
    """The (exclusive) end of the demo's days: the latest midnight whose day is past the lateness when
    the demo seals, so every day of the demo is sealed and releasable."""
    due = sealing_time(today) - timedelta(hours=settings.seal_lateness_hours)
    return due.date()


def _quiet(_message: str) -> None:
    return None


def run_story(*, engine: Engine, settings: Settings, keyring: Keyring, size: int, seed: int,
              days: int = 7, today: date | None = None, progress: Callable[[str], None] = _quiet) -> DemoResult:
    """Run the whole demo into an (empty) database, telling ``progress`` each step; returns what happened."""
    today = today or utcnow().date()
    week_end = demo_week_end(today, settings)
    week_start = week_end - timedelta(days=days)
    result = DemoResult(residents=size, week_start=week_start, week_end=week_end)
    joined_at = datetime.combine(week_start - timedelta(days=1), time(9), tzinfo=UTC)
    residents = make_population(size=size, seed=seed)
    with session_scope(engine) as session:
        staff = _staff(session, keyring=keyring, result=result)
        codes = _invitation_codes(session, admin_id=staff["admin"][0], count=len(residents))
        members: list[tuple[Resident, str]] = []
        for resident, code in zip(residents, codes, strict=True):
            account, token = _join(session, resident=resident, keyring=keyring, settings=settings,
                                   joined_at=joined_at, invitation_code=code)
            members.append((resident, account.id))
            if not result.tokens.member and resident.consent_profile == "public-minded" and resident.work:
                result.tokens.member, result.member_id = token, account.id
    progress(f"{len(members)} residents joined; their phones send {days} days of pings")
    _ingest_week(engine=engine, settings=settings, keyring=keyring, members=members, week_start=week_start,
                 days=days, result=result, progress=progress)
    _licence_release_dividend(engine=engine, settings=settings, keyring=keyring, staff=staff, result=result,
                              today=today, progress=progress)
    return result


def _ingest_week(*, engine: Engine, settings: Settings, keyring: Keyring,
                 members: list[tuple[Resident, str]], week_start: date, days: int, result: DemoResult,
                 progress: Callable[[str], None]) -> None:
    """Each day: the phones send that day's pings; pauses and mid-week withdrawals happen between days."""
    for offset in range(days):
        day = week_start + timedelta(days=offset)
        with session_scope(engine) as session:
            for resident, account_id in members:
                if resident.consent_profile == "pauses" and offset in (PAUSED_DAYS[0], PAUSED_DAYS[-1] + 1):
                    set_collection_paused(session, member_id=account_id, paused=offset == PAUSED_DAYS[0])
                account = session.get(Account, account_id, populate_existing=True)
                assert account is not None
                if resident.consent_profile == "withdraws" and offset == days // 2:
                    _withdraw_midweek(session, account=account, keyring=keyring, settings=settings,
                                      at=datetime.combine(day, time(0), tzinfo=UTC))
                items = [{"id": p.id, "ts": p.ts.isoformat(), "lat": p.lat, "lng": p.lng,
                          "accuracy_m": p.accuracy_m, "speed_mps": p.speed_mps, "activity": p.activity}
                         for p in pings_for_day(resident, day)]
                outcome = ingest_pings(session, account=account, items=items, keyring=keyring, settings=settings)
                result.ingest["accepted"] += outcome.accepted
                result.ingest["duplicates"] += outcome.duplicates
                result.ingest["rejected"] += len(outcome.rejected)
                for reason, count in outcome.dropped.model_dump().items():
                    result.ingest[f"dropped_{reason}"] += count
        progress(f"day {offset + 1} of {days} ingested ({result.ingest['accepted']:,} pings accepted so far)")


@dataclass(frozen=True)
class DemoLicence:
    """One of the modeller's licences in the demo: its table kind, shape and the words on the request."""

    kind: str
    resolution: int
    title: str
    description: str


DEMO_LICENCES = (
    DemoLicence("presence", 9, "Daily movement between neighbourhoods for the regional transport model",
                "Daily counts of residents per H3 cell (resolution 9, generalised where needed) across the city "
                "region, for one week, to calibrate the regional transport model."),
    DemoLicence("od", 7, "Daily origin-destination flows between districts for the regional transport model",
                "Daily counts of residents travelling between H3 cells (resolution 7, about 5 km2) from one "
                "stay to the next, for one week: the trip matrix the transport model's demand is fitted to."),
    DemoLicence("stays", 8, "Where residents spend time, day by day, for the bus network review",
                "Daily counts of residents who stayed at least a quarter of an hour in each H3 cell "
                "(resolution 8), for one week: the places the network has to serve."),
)
"""Presence first (its release is the demo's headline one), then an od and a stays family."""


def _license(session: Session, *, settings: Settings, keyring: Keyring, staff: dict[str, tuple[str, str]],
             result: DemoResult, wanted: DemoLicence, approved_at: datetime) -> str:
    """The modeller asks, two board members approve (opening the family), the treasurer records the fee."""
    request = submit_request(session, caller=_principal(session, *staff["modeller"]), settings=settings,
                             body=LicenceRequestCreate(
        title=wanted.title, purpose="transport-planning", organisation="Merseytravel modelling unit",
        public_benefit="Calibrates the bus network review so that routes follow where residents travel.",
        description=wanted.description,
        dataset=DatasetSpecCreate(kind=wanted.kind, resolution=wanted.resolution, time_bucket="day",
                                  start=result.week_start, end=result.week_end, region=None, k=None),
        duration_days=365, fee_pence=LICENCE_FEE_PENCE))
    for n, voter in enumerate(("board-1", "board-2")):
        vote = cast_vote(session, caller=_principal(session, *staff[voter]), request_id=request.request_id,
                         body=VoteCreate(decision="approve", comment="Safe project, safe outputs."),
                         settings=settings, keyring=keyring, now=approved_at + timedelta(minutes=30 * n))
    assert vote.licence_id is not None
    record_licence_payment(session, licence_id=vote.licence_id, amount_pence=LICENCE_FEE_PENCE,
                           reference=f"BACS MERSEYTRAVEL {wanted.kind.upper()}", recorded_by=staff["treasurer"][0],
                           received_at=approved_at + timedelta(hours=4))
    return vote.licence_id


def _build(*, engine: Engine, settings: Settings, keyring: Keyring, modeller: tuple[str, str],
           licence_id: str, result: DemoResult, built_at: datetime) -> str:
    with session_scope(engine) as session:
        release = request_release(session, caller=_principal(session, *modeller), licence_id=licence_id,
                                  start=result.week_start, end=result.week_end)
        release_id = release.id
    build_release(BuildContext(engine=engine, settings=settings, keyring=keyring, clock=lambda: built_at),
                  release_id)
    with session_scope(engine) as session:
        built = session.get(Release, release_id)
        assert built is not None
        if built.status != "ready":
            raise RuntimeError(f"the demo release {release_id} did not build: {built.error}")
    return release_id


def _licence_release_dividend(*, engine: Engine, settings: Settings, keyring: Keyring,
                              staff: dict[str, tuple[str, str]], result: DemoResult, today: date,
                              progress: Callable[[str], None]) -> None:
    yesterday = datetime.combine(today - timedelta(days=1), time(10), tzinfo=UTC)
    with session_scope(engine) as session:
        for wanted in DEMO_LICENCES:
            result.licences[wanted.kind] = _license(session, settings=settings, keyring=keyring, staff=staff,
                                                    result=result, wanted=wanted, approved_at=yesterday)
    result.licence_id = result.licences["presence"]
    progress(f"licences approved and paid ({', '.join(result.licences)}); sealing the week's tables")
    seal_due(engine, settings, now=sealing_time(today))
    built_yesterday = datetime.combine(today - timedelta(days=1), time(18), tzinfo=UTC)
    for kind, licence_id in result.licences.items():
        progress(f"building the {kind} release")
        result.releases[kind] = _build(engine=engine, settings=settings, keyring=keyring,
                                       modeller=staff["modeller"], licence_id=licence_id, result=result,
                                       built_at=built_yesterday)
    result.release_id = result.releases["presence"]
    with session_scope(engine) as session:
        dividend = declare_dividend(session, period_start=result.week_start, period_end=today,
                                    reserve_bps=settings.reserve_bps, declared_by=staff["treasurer"][0])
        result.dividend = {k: v for k, v in dividend.model_dump().items() if isinstance(v, int | str)}
