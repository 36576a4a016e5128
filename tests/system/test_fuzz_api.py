"""Schemathesis over the app's own OpenAPI document: every operation, every kind of caller.

Each operation gets a freshly seeded world (``tests/support/world.py``) and a bounded number of Hypothesis
examples, positive (inputs that fit the schema) and negative (inputs that do not); each example picks
a caller (anonymous or one of the seven seeded callers) and either real path parameters from the world or
generated ones. Every response must pass ``not_a_server_error``, ``status_code_conformance``,
``content_type_conformance`` and ``response_schema_conformance``: no 5xx, and nothing the operation does
not document. Requests go in-process through Schemathesis' ASGI transport (no network).

Examples per operation and mode: ``COOP_FUZZ_EXAMPLES`` (default 12). The run is derandomised, so CI
sees the same inputs every time; set ``COOP_FUZZ_RANDOM=1`` for a fresh random search.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.figures import FIGURES, count
from tests.support.requests import path_values
from tests.support.routes import RouteInfo, routes, scratch_app
from tests.support.world import CALLER_NAMES, ROLE_OF, World, build_world

EXAMPLES = int(os.environ.get("COOP_FUZZ_EXAMPLES", "12"))
RANDOM = os.environ.get("COOP_FUZZ_RANDOM") == "1"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)

_SCRATCH = scratch_app()
ROUTES = {info.label: info for info in routes(_SCRATCH)}
OPERATION_LABELS = sorted(ROUTES)


@pytest.fixture
def asgi_session(app: FastAPI) -> Iterator[Any]:
    """Schemathesis' in-process client for ``app`` (the ``client`` fixture already ran the lifespan)."""
    session = asgi.get_client(cast(Any, app))
    yield session
    session.close()


def _operation(schema: Any, label: str) -> Any:
    method, path = label.split(" ", 1)
    return schema[path][method]


def _fuzz(world: World, info: RouteInfo, mode: GenerationMode, session: Any) -> None:
    schema = schemathesis.openapi.from_dict(world.app.openapi())
    schema.app = world.app
    operation = _operation(schema, info.label)
    real_path = path_values(world, info) if info.path_parameters else {}
    everyone: list[str | None] = [None, *CALLER_NAMES]
    admitted: list[str | None] = [name for name in CALLER_NAMES if ROLE_OF[name] in info.roles] or [None]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        caller = data.draw(st.one_of(st.sampled_from(admitted), st.sampled_from(everyone)), label="caller")
        fixed = data.draw(st.booleans(), label="real path") if real_path else False
        case = data.draw(operation.as_strategy(generation_mode=mode,
                                               path_parameters=real_path if fixed else None), label="case")
        headers = world.headers(caller)
        response = case.call_and_validate(session=session, headers=headers or None, checks=CHECKS)
        count("fuzz", "examples")
        count("fuzz", f"answered {response.status_code // 100}xx")

    try:
        run()
    except Unsatisfiable:
        # Only possible in negative mode for an operation that takes no input at all: nothing to break.
        assert mode is GenerationMode.NEGATIVE and not operation.query and not operation.body, info.label
        count("fuzz", "operations with nothing to negate")


@pytest.mark.slow
@pytest.mark.parametrize("label", OPERATION_LABELS)
def test_operation_conforms_to_its_schema(label: str, app: FastAPI, client: TestClient, asgi_session: Any) -> None:
    world = build_world(app, client)
    info = ROUTES[label]
    before = FIGURES["fuzz"]["examples"]
    for mode in MODES:
        _fuzz(world, info, mode, asgi_session)
    count("fuzz", "operations")
    assert FIGURES["fuzz"]["examples"] > before, f"{label}: Schemathesis generated nothing"


def test_every_route_is_in_the_openapi_document() -> None:
    """The fuzzed operations are exactly the routes (so no route escapes the fuzzing)."""
    document = _SCRATCH.openapi()
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    assert documented == set(OPERATION_LABELS)
