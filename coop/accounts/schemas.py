"""Request and response shapes for accounts and tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from coop.accounts.roles import Role


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=200)
    accept_terms_version: str = Field(max_length=50)


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[Role] = Field(min_length=1)
    display_name: str = Field(min_length=1, max_length=200)
    organisation: str | None = Field(default=None, max_length=200)


class AccountCreated(BaseModel):
    account_id: str
    token: str
    token_id: str


class MemberCreated(BaseModel):
    member_id: str
    token: str
    token_id: str


class MePublic(BaseModel):
    account_id: str
    roles: list[str]
    display_name: str | None
    organisation: str | None
    created_at: datetime
    collection_paused: bool


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=200)


class TokenPublic(BaseModel):
    token_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None = None


class TokenCreated(BaseModel):
    token_id: str
    token: str
    label: str
    created_at: datetime
