"""docs/api.md stays true to the API.

Fast checks: every ``METHOD /path`` the guide mentions exists in the app's OpenAPI, every operation of
the OpenAPI is mentioned (so a new endpoint must be documented), every ``curl`` example calls a real
operation, and every link resolves. The slow check runs the guide's shell blocks, in the order of its
story (``<!-- step N -->`` before each block), against a real ``coop serve`` loaded with a small demo;
``curl`` fails on any error status unless the example shows the status itself (``-i`` or ``-w``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "api.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

MENTION = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_./{}-]*)")
SHELL_BLOCK = re.compile(r"(?:<!-- step (\d+) -->\n)?```sh\n(.*?)```", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.M)

Operation = tuple[str, str]


def _guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def _openapi_operations(app: FastAPI) -> set[Operation]:
    paths = app.openapi()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item
            if method.upper() in METHODS}


def _template(path: str) -> str:
    """A path with every ``{parameter}`` made anonymous, so names need not agree."""
    return re.sub(r"\{[^}/]*\}", "{}", path.rstrip("."))


def _matches(path: str, template: str) -> bool:
    """Whether a concrete or templated ``path`` names the operation path ``template``."""
    if _template(path) == _template(template):
        return True
    pattern = "".join("[^/]+" if part == "{}" else re.escape(part)
                      for part in re.split(r"(\{\})", _template(template)))
    return re.fullmatch(pattern, path.rstrip(".")) is not None


def _mentions() -> set[Operation]:
    return {(method, path.rstrip(".")) for method, path in MENTION.findall(_guide())}


def _curl_calls() -> list[tuple[Operation, str]]:
    """(method, path) of every ``curl`` to ``$COOP`` in the shell blocks; ``$VAR`` segments become ``{}``."""
    calls = []
    for _step, block in SHELL_BLOCK.findall(_guide()):
        for command in block.replace("\\\n", " ").splitlines():
            if "curl " not in command:
                continue
            method_flag = re.search(r"-X (\w+)", command)
            method = method_flag.group(1) if method_flag else "GET"
            for raw in re.findall(r"\$COOP(/[^\s\"'?]*)", command):
                path = "/".join("{}" if part.startswith("$") else part for part in raw.split("/"))
                calls.append(((method, path), command.strip()))
    return calls


def test_every_operation_the_guide_mentions_exists(app: FastAPI) -> None:
    operations = _openapi_operations(app)
    unknown = sorted(f"{method} {path}" for method, path in _mentions()
                     if not any(m == method and _matches(path, p) for m, p in operations))
    assert not unknown, f"docs/api.md mentions operations the API does not have: {unknown}"


def test_every_operation_of_the_api_is_in_the_guide(app: FastAPI) -> None:
    mentioned = {(method, _template(path)) for method, path in _mentions()}
    missing = sorted(f"{method} {path}" for method, path in _openapi_operations(app)
                     if (method, _template(path)) not in mentioned)
    assert not missing, f"document these operations in docs/api.md: {missing}"


def test_every_curl_example_calls_a_real_operation(app: FastAPI) -> None:
    operations = _openapi_operations(app)
    calls = _curl_calls()
    assert len(calls) > 50  # the extraction itself works
    wrong = [command for (method, path), command in calls
             if not any(m == method and _matches(path, p) for m, p in operations)]
    assert not wrong, f"these examples call no operation of the API: {wrong}"


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    return {_slug(heading) for heading in HEADING.findall(markdown)}


def _resolves(target: str) -> bool:
    file_part, _, anchor = target.partition("#")
    document = (GUIDE.parent / file_part) if file_part else GUIDE
    if not document.is_file():
        return False
    return not anchor or anchor in _anchors(document.read_text(encoding="utf-8"))


def test_every_link_resolves() -> None:
    targets = [target for target in LINK.findall(_guide()) if not target.startswith(("http://", "https://"))]
    assert len(targets) > 20  # the extraction itself works
    broken = [target for target in targets if not _resolves(target)]
    assert not broken, f"broken links in docs/api.md: {broken}"


def test_every_shell_block_has_its_place_in_the_story() -> None:
    blocks = SHELL_BLOCK.findall(_guide())
    assert blocks
    assert all(step for step, _block in blocks), "put <!-- step N --> before every ```sh block"


# -- the guide, run -------------------------------------------------------------------------------

CURL_WRAPPER = """
set -euo pipefail
curl() {
  # An example that does not show the status (-i, -w) must succeed: fail on any 4xx/5xx.
  local arg
  for arg in "$@"; do
    case $arg in -i|--include|-w|--write-out) command curl "$@"; return ;; esac
  done
  command curl --fail-with-body "$@"
}
"""


def _story(port: int) -> str:
    blocks = [(int(step), block) for step, block in SHELL_BLOCK.findall(_guide())]
    ordered = [block for _step, block in sorted(blocks, key=lambda item: item[0])]  # stable: document order
    parts = [CURL_WRAPPER]
    for block in ordered:
        parts.append(block.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("--port 8000", f"--port {port}"))
        if "coop serve" in block:
            parts.append('GUIDE_SERVER=$!\ntrap \'kill "$GUIDE_SERVER" 2>/dev/null || true\' EXIT\n')
    return "\n".join(parts)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_the_guide_runs_as_written(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOP_")} | {"TMPDIR": str(tmp_path)}
    process = subprocess.Popen(["bash", "-c", _story(_free_port())], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output[-6000:]
    assert "manifest signature verified" in output
    assert "download/cells.csv: OK" in output and "download/cells.geojson: OK" in output
    assert "ledger ok:" in output
    assert '"erased": true' in output or '"erased":true' in output
