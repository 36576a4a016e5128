"""DatasetSpec and licence request validation: every bad input is a 422 problem, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from coop.accounts.models import Role
from coop.kit.settings import Settings
from coop.licensing.schemas import DatasetSpec
from tests.support.factories import Caller, make_account
from tests.support.licensing import VALID_DATASET, request_body

BAD_DATASETS: list[tuple[str, dict[str, Any]]] = [
    ("resolution too coarse", {"resolution": 6}),
    ("resolution too fine", {"resolution": 11}),
    ("resolution as a string", {"resolution": "9"}),
    ("resolution as a float", {"resolution": 9.0}),
    ("resolution as a boolean", {"resolution": True}),
    ("resolution missing", {"resolution": None}),
    ("unknown time bucket", {"time_bucket": "month"}),
    ("start in another format", {"start": "02/11/2026"}),
    ("start as a datetime", {"start": "2026-11-02T00:00:00Z"}),
    ("start as epoch seconds", {"start": 1793577600}),
    ("impossible date", {"start": "2026-02-30"}),
    ("start equals end", {"start": "2026-11-09", "end": "2026-11-09"}),
    ("start after end", {"start": "2026-11-10", "end": "2026-11-09"}),
    ("weekly start not a Monday", {"time_bucket": "week", "start": "2026-11-03", "end": "2026-11-16"}),
    ("weekly end not a Monday", {"time_bucket": "week", "start": "2026-11-02", "end": "2026-11-15"}),
    ("bbox of three numbers", {"region": {"bbox": [-3.2, 53.3, -2.8]}}),
    ("bbox of five numbers", {"region": {"bbox": [-3.2, 53.3, -2.8, 53.5, 1]}}),
    ("bbox min lng above max", {"region": {"bbox": [-2.8, 53.3, -3.2, 53.5]}}),
    ("bbox min lat above max", {"region": {"bbox": [-3.2, 53.5, -2.8, 53.3]}}),
    ("bbox empty in lng", {"region": {"bbox": [-3.2, 53.3, -3.2, 53.5]}}),
    ("bbox longitude out of range", {"region": {"bbox": [-181, 53.3, -2.8, 53.5]}}),
    ("bbox latitude out of range", {"region": {"bbox": [-3.2, -91, -2.8, 53.5]}}),
    ("bbox of strings", {"region": {"bbox": ["-3.2", "53.3", "-2.8", "53.5"]}}),
    ("region with an extra key", {"region": {"bbox": [-3.2, 53.3, -2.8, 53.5], "crs": "EPSG:27700"}}),
    ("region as a name", {"region": "Liverpool"}),
    ("k below two", {"k": 1}),
    ("k zero", {"k": 0}),
    ("k as a string", {"k": "5"}),
    ("k as a fraction", {"k": 2.5}),
    ("unknown dataset field", {"colour": "blue"}),
    ("unknown kind", {"kind": "heatmap"}),
    ("kind not offered yet: stays", {"kind": "stays"}),
    ("kind not offered yet: od", {"kind": "od"}),
    ("epsilon zero", {"epsilon_per_day": 0}),
    ("epsilon negative", {"epsilon_per_day": -0.5}),
    ("epsilon as a string", {"epsilon_per_day": "0.5"}),
    ("epsilon as a boolean", {"epsilon_per_day": True}),
    ("epsilon absurd", {"epsilon_per_day": 1e10}),
]


def _modeller(app: FastAPI) -> Caller:
    return make_account(app, Role.MODELLER, name="Validator")


def _assert_problem_422(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 422
    assert any(field in [str(part) for part in error["loc"]] for error in body["errors"]), body


@pytest.mark.parametrize(("case", "change"), BAD_DATASETS, ids=[case for case, _ in BAD_DATASETS])
def test_bad_datasets_are_422(client: TestClient, app: FastAPI, case: str, change: dict[str, Any]) -> None:
    dataset = {**VALID_DATASET, **change}
    dataset = {key: value for key, value in dataset.items() if value is not None or key == "region"}
    response = client.post("/v1/licence-requests", json=request_body() | {"dataset": dataset},
                           headers=_modeller(app).headers)
    _assert_problem_422(response, "dataset")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_coordinates_are_422(client: TestClient, app: FastAPI, literal: str) -> None:
    raw = json.dumps(request_body()).replace("-3.2", literal, 1)
    assert literal in raw
    response = client.post("/v1/licence-requests", content=raw,
                           headers=_modeller(app).headers | {"Content-Type": "application/json"})
    _assert_problem_422(response, "bbox")


BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown purpose", {"purpose": "astrology"}, "purpose"),
    ("empty title", {"title": ""}, "title"),
    ("blank title", {"title": "   "}, "title"),
    ("over-long organisation", {"organisation": "x" * 201}, "organisation"),
    ("duration zero", {"duration_days": 0}, "duration_days"),
    ("duration over two years", {"duration_days": 731}, "duration_days"),
    ("duration as a float", {"duration_days": 30.0}, "duration_days"),
    ("duration as a string", {"duration_days": "30"}, "duration_days"),
    ("negative fee", {"fee_pence": -1}, "fee_pence"),
    ("absurd fee", {"fee_pence": 10**12 + 1}, "fee_pence"),
    ("fee as a float", {"fee_pence": 1500.5}, "fee_pence"),
    ("fee as a whole float", {"fee_pence": 1500.0}, "fee_pence"),
    ("fee as a string", {"fee_pence": "1500"}, "fee_pence"),
    ("fee as a boolean", {"fee_pence": True}, "fee_pence"),
    ("unknown field", {"priority": "high"}, "priority"),
    ("dataset missing", {"dataset": None}, "dataset"),
]


@pytest.mark.parametrize(("case", "change", "field"), BAD_REQUESTS, ids=[case for case, _, _ in BAD_REQUESTS])
def test_bad_requests_are_422(client: TestClient, app: FastAPI, case: str, change: dict[str, Any],
                              field: str) -> None:
    body = request_body() | change
    body = {key: value for key, value in body.items() if value is not None}
    response = client.post("/v1/licence-requests", json=body, headers=_modeller(app).headers)
    _assert_problem_422(response, field)


def test_bodies_that_are_not_objects_are_422(client: TestClient, app: FastAPI) -> None:
    headers = _modeller(app).headers
    for content in ["[]", "null", "\"request\"", "{", "{\"dataset\": []}"]:
        response = client.post("/v1/licence-requests", content=content,
                               headers=headers | {"Content-Type": "application/json"})
        assert response.status_code == 422, content


@pytest.mark.parametrize("change", [
    {"resolution": 7}, {"resolution": 10}, {"time_bucket": "day", "start": "2026-11-03", "end": "2026-11-04"},
    {"time_bucket": "week", "start": "2026-11-02", "end": "2026-11-16"}, {"region": None},
    {"region": {"bbox": [-180, -90, 180, 90]}}, {"region": {"bbox": [-3, 53, -2, 54]}}, {"k": 50},
    {"kind": "presence"}, {"epsilon_per_day": 0.8}, {"epsilon_per_day": 1},
], ids=["coarsest", "finest", "one-day", "two-weeks", "whole-region", "whole-world", "integer-bbox", "high-k",
        "presence", "own-epsilon", "integer-epsilon"])
def test_valid_edge_datasets_are_accepted_and_stored_whole(client: TestClient, app: FastAPI,
                                                           change: dict[str, Any]) -> None:
    response = client.post("/v1/licence-requests", json=request_body(dataset=change),
                           headers=_modeller(app).headers)
    assert response.status_code == 201, response.text
    dataset = response.json()["dataset"]
    assert set(dataset) == {"kind", "resolution", "time_bucket", "start", "end", "region", "k", "epsilon_per_day"}
    expected = {**VALID_DATASET, "kind": "presence", "k": 2, "epsilon_per_day": None, **change}
    if expected["region"] is not None:
        expected["region"] = {"bbox": [float(x) for x in expected["region"]["bbox"]]}
    assert dataset == expected
    assert DatasetSpec.model_validate(dataset).model_dump(mode="json") == dataset


@pytest.mark.parametrize("change", [
    {"duration_days": 1}, {"duration_days": 730}, {"fee_pence": 0}, {"fee_pence": 10**12},
    {"purpose": "commercial-insights"},
])
def test_valid_edge_requests_are_accepted(client: TestClient, app: FastAPI, change: dict[str, Any]) -> None:
    response = client.post("/v1/licence-requests", json=request_body(**change), headers=_modeller(app).headers)
    assert response.status_code == 201, response.text
    body = response.json()
    for key, value in change.items():
        assert body[key] == value


def test_k_is_checked_against_the_k_floor_of_the_settings(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"k_floor": 5}))
    with TestClient(app) as client:
        headers = _modeller(app).headers
        below = client.post("/v1/licence-requests", json=request_body(dataset={"k": 4}), headers=headers)
        _assert_problem_422(below, "k")
        assert "5" in below.json()["detail"]
        at_floor = client.post("/v1/licence-requests", json=request_body(dataset={"k": 5}), headers=headers)
        assert at_floor.status_code == 201
        defaulted = client.post("/v1/licence-requests", json=request_body(), headers=headers)
        assert defaulted.status_code == 201
        assert defaulted.json()["dataset"]["k"] == 5


def test_strings_are_trimmed(client: TestClient, app: FastAPI) -> None:
    response = client.post("/v1/licence-requests", json=request_body(title="  Bus study  "),
                           headers=_modeller(app).headers)
    assert response.json()["title"] == "Bus study"
