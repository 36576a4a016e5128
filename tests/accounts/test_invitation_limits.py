"""Wrong invitation codes are rate-limited per client address (429 with ``Retry-After``), on top of the
sign-up limit; the limit counts failures only, and a refused attempt spends no code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from coop.accounts.roles import Role
from coop.kit.settings import Settings
from tests.support.factories import make_account
from tests.support.membership import issue_codes, joined, sign_up

WRONG_CODES_PER_HOUR = 3


@pytest.fixture
def limited_app(settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"invitation_failures_per_hour": WRONG_CODES_PER_HOUR}))


@pytest.fixture
def limited(limited_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(limited_app) as client:
        yield client


def test_wrong_codes_are_limited_per_address(limited: TestClient, limited_app: FastAPI) -> None:
    admin = make_account(limited_app, Role.ADMIN)
    [good] = issue_codes(limited, admin, 1)
    [also_good] = issue_codes(limited, admin, 1)
    assert joined(sign_up(limited, code=also_good))  # a right code is no failure

    statuses = [sign_up(limited, code=f"WRNG-C0DE-0000-000{n}").status_code for n in range(WRONG_CODES_PER_HOUR)]
    assert statuses == [422] * WRONG_CODES_PER_HOUR
    refused = sign_up(limited, code=good)  # past the limit even a good code waits: guessing must stop
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert sign_up(limited, code="WRNG-C0DE-0000-0009").status_code == 429

    plain = sign_up(limited)  # a sign-up without a code is only under the sign-up limit
    assert plain.status_code == 201 and plain.json()["verified"] is False

    limited_app.state.invitation_failure_limiter.reset()  # the window has passed
    member = sign_up(limited, code=good)
    assert member.status_code == 201 and member.json()["verified"] is True  # the 429 spent nothing


def test_wrong_codes_also_count_as_sign_ups(settings: Settings) -> None:
    two_an_hour = create_app(settings.model_copy(update={"signup_rate_per_hour": 2}))
    with TestClient(two_an_hour) as client:
        assert sign_up(client, code="WRNG-C0DE-0000-0001").status_code == 422
        assert sign_up(client).status_code == 201
        assert sign_up(client).status_code == 429
