"""Request and response shapes for accounts and tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from coop.accounts.invitations import DEFAULT_VALID_DAYS, MAX_CODES_PER_CALL
from coop.accounts.roles import Role


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=200)
    accept_terms_version: str = Field(max_length=50)
    invitation_code: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="A single-use code from the co-op (e.g. 7KQ2-M9XD-4HTB-WC3E; case, spaces and hyphens "
                    "are ignored); it verifies the member at once")


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
    verified: bool = Field(description="Whether the member counts in the co-op's tables (a valid "
                                       "invitation code verifies at once; otherwise an admin verifies later)")


class MePublic(BaseModel):
    account_id: str
    roles: list[str]
    display_name: str | None
    organisation: str | None
    created_at: datetime
    collection_paused: bool
    verified: bool = Field(description="Whether this account counts as one verified person (members: "
                                       "only verified members' data counts in the co-op's tables)")


class InvitationsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=MAX_CODES_PER_CALL, description="How many single-use codes (1..1000)")
    note: str | None = Field(default=None, max_length=200,
                             description="For the admins' own records (e.g. the event the codes are for); "
                                         "never shown to the board")
    valid_days: int = Field(default=DEFAULT_VALID_DAYS, ge=1, le=365, description="Days until the codes expire")


class InvitationsIssued(BaseModel):
    codes: list[str] = Field(description="The codes, shown this once (the co-op keeps only their hashes)")
    expires_at: datetime


class MemberVerified(BaseModel):
    member_id: str
    verified: bool = True
    verified_at: datetime


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
