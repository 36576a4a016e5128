"""Every error is RFC 9457 problem+json: 404, 405, 413, 415, 422 and an unexpected 500."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.support.factories import sign_up_member


def assert_problem(response: object, status: int) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str) and isinstance(body["title"], str) and isinstance(body["detail"], str)
    return dict(body)


def test_unknown_route_is_problem_404(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404)


def test_wrong_method_is_problem_405(client: TestClient) -> None:
    assert_problem(client.delete("/v1/purposes"), 405)


def test_validation_error_is_problem_422_with_errors(client: TestClient) -> None:
    body = assert_problem(client.post("/v1/members", json={"accept_terms_version": 5}), 422)
    errors = body["errors"]
    assert isinstance(errors, list) and errors[0]["loc"] == ["body", "accept_terms_version"]


def test_malformed_json_is_problem_422(client: TestClient) -> None:
    response = client.post("/v1/members", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_problem(response, 422)


def test_wrong_content_type_is_problem_415(client: TestClient) -> None:
    response = client.post("/v1/members", content=b"accept_terms_version=2026-11",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(response, 415)


def test_body_over_the_limit_is_413_before_reading(client: TestClient, app: FastAPI) -> None:
    limit = app.state.settings.max_body_bytes
    big = b'{"accept_terms_version": "' + b"x" * limit + b'"}'
    assert_problem(client.post("/v1/members", content=big, headers={"Content-Type": "application/json"}), 413)


def test_chunked_body_over_the_limit_is_413(client: TestClient, app: FastAPI) -> None:
    limit = app.state.settings.max_body_bytes
    member = sign_up_member(client)

    def chunks() -> Iterator[bytes]:
        yield b'{"label": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    response = client.post("/v1/me/tokens", content=chunks(),
                           headers={"Content-Type": "application/json", **member.headers})
    assert_problem(response, 413)


def test_unexpected_exception_is_generic_500_and_logged(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    def explode() -> None:
        raise RuntimeError("secret internal detail")

    app.add_api_route("/boom", explode)
    with caplog.at_level(logging.ERROR, logger="coop.api"), TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/boom")
    body = assert_problem(response, 500)
    assert "secret internal detail" not in str(body)
    assert any("secret internal detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_nul_byte_in_a_path_is_404_not_a_database_error(client: TestClient) -> None:
    member = sign_up_member(client)
    assert_problem(client.delete("/v1/me/tokens/%00", headers=member.headers), 404)
    assert_problem(client.get("/v1/me/receipts/a%00b", headers=member.headers), 404)
