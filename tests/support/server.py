"""A real ``coop serve`` in a subprocess on 127.0.0.1, for crash and end-to-end tests.

Invariants: the server listens on loopback only; every wait is bounded; ``kill`` sends SIGKILL to the
server's own process id (nothing else) and reaps it; the database is a SQLite file in a temporary
directory or a PostgreSQL database created for the test and dropped after it (``scratch_database``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from coop.kit.db import is_sqlite
from tests.support.world import PURPOSE

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def scratch_database(test_database_url: str, directory: Path) -> Iterator[str]:
    """A new, empty database of the same kind as the test database; dropped afterwards (PostgreSQL)."""
    if is_sqlite(test_database_url):
        yield f"sqlite:///{directory / 'crash.db'}"
        return
    url = make_url(test_database_url)
    name = f"coop_crash_{secrets.token_hex(4)}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


class Server:
    """One ``coop serve`` process at a time over the same database and data directory."""

    def __init__(self, *, database_url: str, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {**os.environ, "COOP_DATABASE_URL": database_url, "COOP_DATA_DIR": str(data_dir),
                    "COOP_K_FLOOR": "2", **(extra_env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``coop <args>`` against the same database (bounded)."""
        return subprocess.run([sys.executable, "-m", "coop.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=120, check=False)

    def create_account(self, role: str, name: str, organisation: str | None = None) -> dict[str, Any]:
        extra = ["--organisation", organisation] if organisation else []
        done = self.cli("accounts", "create", "--role", role, "--name", name, *extra, "--json")
        assert done.returncode == 0, done.stderr
        created: dict[str, Any] = json.loads(done.stdout)
        return created

    def create_accounts(self, admin_token: str, role: str, names: list[str],
                        organisation: str | None = None) -> list[dict[str, Any]]:
        """Accounts made by an admin through the running server (quicker than one CLI process each)."""
        with self.client(admin_token) as http:
            created = [http.post("/v1/accounts", json={"roles": [role], "display_name": name,
                                                       "organisation": organisation}) for name in names]
        assert all(response.status_code == 201 for response in created), [r.text for r in created]
        return [response.json() for response in created]

    def start(self) -> None:
        assert self.process is None, "already running"
        log = (self.data_dir / f"server-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coop.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"coop serve exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"coop serve did not become ready in {START_TIMEOUT_S} s: {self.log_tail()}")

    def pause(self) -> None:
        """SIGSTOP the server (to look at the database while it stands still); ``resume`` continues it."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no goodbye (a power cut, as far as the app can tell)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def log_tail(self) -> str:
        logs = sorted(self.data_dir.glob("server-*.log"))
        return logs[-1].read_text(errors="replace")[-2000:] if logs else ""

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


def consenting_members(server: Server, admin_token: str, count_: int) -> list[dict[str, Any]]:
    """``count_`` members made by the admin, each giving consent to the world's purpose."""
    members = server.create_accounts(admin_token, "member", [f"Resident {n}" for n in range(count_)])
    with server.client() as http:
        policy = next(p["policy_version"] for p in http.get("/v1/purposes").json()["items"]
                      if p["code"] == PURPOSE)
    for member in members:
        with server.client(member["token"]) as http:
            assert http.put(f"/v1/me/consents/{PURPOSE}",
                            json={"given": True, "policy_version": policy}).status_code == 200
    return members


def ledger_verifies(server: Server) -> dict[str, Any]:
    """``coop ledger verify --json`` against the server's database: exit status 0 and ok."""
    done = server.cli("ledger", "verify", "--json")
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], (done.stdout, done.stderr)
    return report
