"""Request and response shapes for purposes and consent."""

from __future__ import annotations

from pydantic import BaseModel


class PurposePublic(BaseModel):
    code: str
    title: str
    description: str
    dpv: str
    policy_version: str


class CoopPublic(BaseModel):
    name: str
    terms_version: str
    k_floor: int
    finest_resolution: int
    coarsest_resolution: int
    purposes: list[PurposePublic]
    jwks: dict[str, list[dict[str, str]]]
