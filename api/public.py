"""Public endpoints: health, readiness, the co-op's description (with its JWKS) and purposes."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlmodel import select

from api.deps import KeyringDep, SessionDep, SettingsDep
from api.problems import problem_doc, problem_response
from api.routing import domain_router
from consent.models import Purpose
from consent.schemas import CoopPublic, PurposePublic
from coop.kit.pagination import Page

router = domain_router(tag="public", authenticated=False)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: problem_doc("The database does not answer")})
def readyz(request: Request) -> JSONResponse:
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database means "not ready"
        return problem_response(status=503, detail="the database does not answer", slug="unavailable")
    return JSONResponse({"status": "ready"})


def _purposes(session: SessionDep) -> list[PurposePublic]:
    rows = session.exec(select(Purpose).order_by(Purpose.code)).all()
    return [PurposePublic.model_validate(row, from_attributes=True) for row in rows]


@router.get("/v1/purposes")
def list_purposes(session: SessionDep) -> Page[PurposePublic]:
    """All purposes (six, so always one page)."""
    return Page(items=_purposes(session), next_cursor=None)


@router.get("/v1/coop")
def describe_coop(session: SessionDep, settings: SettingsDep, keyring: KeyringDep) -> CoopPublic:
    return CoopPublic(
        name=settings.name,
        terms_version=settings.terms_version,
        k_floor=settings.k_floor,
        finest_resolution=settings.finest_resolution,
        coarsest_resolution=settings.coarsest_resolution,
        purposes=_purposes(session),
        jwks=keyring.jwks(),
    )
