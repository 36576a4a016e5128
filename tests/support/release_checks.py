"""Helpers for release tests: request a release through the API, wait for the worker, read the table."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.support.factories import Caller

Row = tuple[str, str, int, int]


def request_release(client: TestClient, caller: Caller, licence_id: str, *, start: date, end: date,
                    headers: dict[str, str] | None = None) -> Any:
    return client.post(f"/v1/licences/{licence_id}/releases", json={"start": start.isoformat(),
                                                                     "end": end.isoformat()},
                       headers={**caller.headers, **(headers or {})})


def built_release(client: TestClient, app: FastAPI, caller: Caller, licence_id: str, *, start: date,
                  end: date) -> dict[str, Any]:
    """Request a release, wait for the build, and return its manifest (asserting it is ready)."""
    response = request_release(client, caller, licence_id, start=start, end=end)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["progress"] == 0
    app.state.release_worker.wait_for_builds()
    manifest: dict[str, Any] = client.get(f"/v1/releases/{body['release_id']}", headers=caller.headers).json()
    assert manifest["status"] == "ready", manifest
    return manifest


def release_rows(client: TestClient, caller: Caller, release_id: str) -> list[Row]:
    response = client.get(f"/v1/releases/{release_id}/files/cells.csv", headers=caller.headers)
    assert response.status_code == 200, response.text
    reader = csv.reader(io.StringIO(response.text))
    assert next(reader) == ["bucket_start", "cell", "resolution", "members"]
    return [(bucket, cell, int(resolution), int(members)) for bucket, cell, resolution, members in reader]
