"""The layering rules of docs/architecture.md are checked by import-linter in ``make lint``.

These tests prove the contracts bite: the tree as it is keeps them, and a copy of the tree with one
forbidden import added (the kernel reaching into a domain; the pure engine reaching the database; one
domain reaching another's tables) breaks exactly the contract that names the rule.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("coop", "consent", "aggregation", "api")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
                          cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "COLUMNS": "400"},
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_every_contract(tree_copy: Path) -> None:
    result = _lint(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("coop/kit/probe_violation.py", "import coop.ledger.service\n", "The kernel (coop.kit) imports no domain"),
    ("aggregation/probe_violation.py", "import sqlalchemy\n", "The aggregation engine is pure"),
    ("coop/ledger/probe_violation.py", "import coop.ingest.models\n",
     "Other domains reach coop.ingest through its service"),
])
def test_a_forbidden_import_breaks_its_contract(tree_copy: Path, module: str, line: str, broken: str) -> None:
    probe = tree_copy / module
    probe.write_text(f'"""A deliberate violation."""\n\n{line}')
    try:
        result = _lint(tree_copy)
    finally:
        probe.unlink()
    assert result.returncode != 0
    broken_lines = [text for text in result.stdout.splitlines() if "BROKEN" in text]
    assert any(broken in text for text in broken_lines), result.stdout
    assert len(broken_lines) == 1, broken_lines
