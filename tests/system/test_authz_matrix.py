"""The authorisation matrix, generated from the route table: every route x every kind of caller.

Callers: anonymous, member, another member, modeller, another modeller, board, treasurer, admin. The
roles a route admits are read from its dependencies (``api.deps.declares_roles``), so a new route is in
the matrix as soon as it exists. Expected, cell by cell:
- a public route answers everyone (2xx);
- anonymous on a protected route: 401;
- a caller holding none of the admitted roles: 403;
- a *scoped* caller (admitted as member or modeller, or on an any-account route) asking for a resource
  owned by someone else: 404, with a body identical (ids aside) to the 404 for a resource that does
  not exist, so the answer reveals nothing;
- the owner, and staff admitted by role (board, treasurer, admin): 2xx.
Every response, whatever its status, must contain no marker of data the caller may not see (other than
the path values it sent).
Failing cells run first and must change nothing: the owner's success cell runs last on the same world.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from tests.support.figures import count
from tests.support.requests import fill_path, path_values, request_for, route_owner
from tests.support.routes import RouteInfo, routes, scratch_app
from tests.support.world import BOARD, CALLER_NAMES, MEMBER, MODELLER, OTHER_OF, ROLE_OF, World, build_world

ANONYMOUS = None
MATRIX_CALLERS: tuple[str | None, ...] = (ANONYMOUS, *CALLER_NAMES)
SUCCESS, UNAUTHENTICATED, FORBIDDEN, HIDDEN = "2xx", 401, 403, 404
SCOPED_ROLES = {ROLE_OF[MEMBER], ROLE_OF[MODELLER]}


ROUTES = routes(scratch_app())


@dataclass(frozen=True)
class Cell:
    caller: str | None
    expected: str | int


def expected_outcome(info: RouteInfo, caller: str | None) -> str | int:
    if not info.protected:
        return SUCCESS
    if caller is None:
        return UNAUTHENTICATED
    role = ROLE_OF[caller]
    if role not in info.roles:
        return FORBIDDEN
    owner = route_owner(info)
    if owner is None or caller == owner:
        return SUCCESS
    scoped = info.any_account or role in SCOPED_ROLES
    return HIDDEN if scoped else SUCCESS


def cells(info: RouteInfo) -> list[Cell]:
    """The route's cells, failing ones first and the owner's success last."""
    every = [Cell(caller, expected_outcome(info, caller)) for caller in MATRIX_CALLERS]
    owner = route_owner(info)

    def order(cell: Cell) -> tuple[int, int]:
        return (cell.expected == SUCCESS, cell.caller == owner and cell.expected == SUCCESS)

    return sorted(every, key=order)


def send(world: World, info: RouteInfo, caller: str | None, values: dict[str, str]) -> Response:
    spec = request_for(world, info, caller)
    if spec is None:
        pytest.fail(f"{info.label} takes a body but tests/support/requests.py BODIES has no entry for it")
    response: Response = world.client.request(info.method, fill_path(info.path, values), json=spec.json,
                                              params=spec.params, headers={**world.headers(caller), **spec.headers})
    return response


def assert_no_leak(world: World, info: RouteInfo, caller: str | None, response: Response,
                   sent: dict[str, str]) -> None:
    """No marker the caller may not see is in the answer, except the path values the caller sent itself
    (an admin verifying a member names the member's id, and the answer may repeat it)."""
    text = response.text
    hidden = world.secrets_hidden_from(caller) - set(sent.values())
    leaked = sorted(secret for secret in hidden if secret in text)
    assert not leaked, f"{info.label} answered {caller or 'anonymous'} with others' data: {leaked}"


def assert_problem(response: Response, status: int, label: str, caller: str | None) -> None:
    assert response.status_code == status, f"{label} as {caller or 'anonymous'}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status


def assert_indistinguishable_from_missing(world: World, info: RouteInfo, caller: str | None,
                                          values: dict[str, str], response: Response) -> None:
    """The 404 for another's resource reads exactly like the 404 for a resource that never existed."""
    owner = route_owner(info)
    assert owner is not None
    owned_values = set(world.owned[owner].resources.values())
    missing = {name: (str(uuid.uuid4()) if value in owned_values else value) for name, value in values.items()}
    baseline = send(world, info, caller, missing)
    assert baseline.status_code == 404, baseline.text

    def neutral(text: str, substitutions: dict[str, str]) -> str:
        for value in substitutions.values():
            text = text.replace(value, "<id>")
        return text

    assert neutral(response.text, values) == neutral(baseline.text, missing)


def _matrix_params() -> list[object]:
    return [pytest.param(info, id=info.label) for info in ROUTES]


@pytest.mark.slow
@pytest.mark.parametrize("info", _matrix_params())
def test_route_authorisation(info: RouteInfo, app: FastAPI, client: TestClient) -> None:
    world = build_world(app, client)
    values = path_values(world, info)
    for cell in cells(info):
        response = send(world, info, cell.caller, values)
        count("authorisation matrix", "cells")
        count("authorisation matrix", f"cells expecting {cell.expected}")
        assert_no_leak(world, info, cell.caller, response, values)
        if cell.expected == SUCCESS:
            assert 200 <= response.status_code < 300, (
                f"{info.label} as {cell.caller or 'anonymous'}: {response.status_code} {response.text}")
        else:
            assert isinstance(cell.expected, int)
            assert_problem(response, cell.expected, info.label, cell.caller)
            if cell.expected == HIDDEN:
                assert_indistinguishable_from_missing(world, info, cell.caller, values, response)
    count("authorisation matrix", "routes")


def test_route_table_declares_roles_for_every_protected_route() -> None:
    """Reading the table raises for a route that reads the token but declares no roles; also, the
    matrix must see the routes of every domain and every kind of cell."""
    labels = {info.label for info in ROUTES}
    assert {"GET /v1/me", "POST /v1/members", "GET /v1/ledger/verify", "GET /v1/licences/{licence_id}"} <= labels
    kinds = {expected_outcome(info, caller) for info in ROUTES for caller in MATRIX_CALLERS}
    assert kinds == {SUCCESS, UNAUTHENTICATED, FORBIDDEN, HIDDEN}


def test_matrix_size_is_routes_times_callers() -> None:
    total = sum(len(cells(info)) for info in ROUTES)
    assert total == len(ROUTES) * len(MATRIX_CALLERS)
    assert OTHER_OF[MEMBER] in MATRIX_CALLERS and BOARD in MATRIX_CALLERS
