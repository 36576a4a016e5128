"""Small typed factories for tests: accounts with tokens, through the API or the service layer."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from coop.accounts.service import create_account
from coop.kit.db import session_scope


@dataclass(frozen=True)
class Caller:
    """An account and its token, with ready-made headers."""

    account_id: str
    token: str
    token_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def sign_up_member(client: TestClient, *, display_name: str = "A resident") -> Caller:
    """A member who joined through the public sign-up endpoint."""
    terms = client.get("/v1/coop").json()["terms_version"]
    response = client.post("/v1/members", json={"display_name": display_name, "accept_terms_version": terms})
    assert response.status_code == 201, response.text
    body = response.json()
    return Caller(account_id=body["member_id"], token=body["token"], token_id=body["token_id"])


def make_account(app: FastAPI, *roles: Role, name: str = "Someone", organisation: str | None = None) -> Caller:
    """An account with the given roles, created through the service layer (as the CLI does)."""
    with session_scope(app.state.engine) as session:
        account, issued = create_account(session, roles=list(roles), display_name=name,
                                         organisation=organisation, keyring=app.state.keyring)
        return Caller(account_id=account.id, token=issued.token, token_id=issued.token_id)
