"""docs/quickstart.md cannot rot: its shell blocks run, in order, against a real ``coop serve`` loaded
with a (small) demo, exactly as a newcomer would type them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "quickstart.md"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _blocks() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", QUICKSTART.read_text(), flags=re.S)
    return [block for block in blocks if "make run" not in block]


@pytest.mark.slow
def test_the_quickstart_works_as_written(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOP_")}
    env |= {"COOP_DATA_DIR": str(tmp_path / "var"), "COOP_K_FLOOR": "5"}
    coop = str(venv / "bin" / "coop")
    subprocess.run([coop, "demo", "--size", "200", "--days", "2"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=300)
    port = _free_port()
    server = subprocess.Popen([coop, "serve", "--port", str(port), "--log-level", "warning"], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        script = "\n".join(_blocks()).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        done = subprocess.run(["bash", "-eu", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "manifest signature verified" in out
    assert out.count("matches the signed manifest") == 5 and "release verified" in out
    assert "bucket_start,cell,resolution,members" in out
    assert '"ok":true' in out.replace(" ", "")
    assert '"balance_pence"' in out and '"contribution_units"' in out
    assert '"accepted":1' in out.replace(" ", "")
    assert "first," in out and ",53.4084,-2.9916," in out  # the new member's ping, read back as CSV
    assert (tmp_path / "download" / "preview.svg").read_text().startswith("<")
