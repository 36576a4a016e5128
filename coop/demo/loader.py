"""Load the demo co-op, write its files under ``DATA_DIR/demo/`` and print what a newcomer can try.

Invariant: ``load_demo_if_empty`` touches only a database with no accounts, so it never mixes demo
data into a real co-op. Token files are written with mode 0600 (they are secrets, if demo ones).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from coop.accounts.models import Account
from coop.demo.story import DemoResult, run_story
from coop.kit.crypto import Keyring, load_keyring
from coop.kit.db import engine_for, session_scope
from coop.kit.settings import Settings
from coop.releases.builder import release_dir
from coop.releases.models import Release

DEFAULT_SIZE = 2500
DEFAULT_SEED = 2026


def database_is_empty(engine: Engine) -> bool:
    with session_scope(engine) as session:
        count: int = session.execute(sa.select(sa.func.count()).select_from(Account)).scalar_one()
        return count == 0


def _write_secret(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def write_demo_files(*, settings: Settings, engine: Engine, result: DemoResult) -> Path:
    """Copy the release files and the manifest, and write the demo tokens, into ``DATA_DIR/demo``."""
    out = settings.data_dir / "demo"
    tokens = out / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    for kind, release_id in result.releases.items():
        target = out if kind == "presence" else out / kind
        target.mkdir(parents=True, exist_ok=True)
        for item in release_dir(settings, release_id).iterdir():
            shutil.copy2(item, target / item.name)
    with session_scope(engine) as session:
        release = session.get(Release, result.release_id)
        assert release is not None
        (out / "manifest.jws").write_text((release.jws or "") + "\n", encoding="utf-8")
    for role in ("admin", "treasurer", "modeller", "member"):
        _write_secret(tokens / f"{role}.token", getattr(result.tokens, role))
    for n, token in enumerate(result.tokens.board, start=1):
        _write_secret(tokens / f"board-{n}.token", token)
    ids = {"licence_id": result.licence_id, "release_id": result.release_id, "member_id": result.member_id,
           "licences": result.licences, "releases": result.releases,
           "dividend_id": str(result.dividend.get("dividend_id", "")),
           "week_start": result.week_start.isoformat(), "week_end": result.week_end.isoformat()}
    (out / "ids.json").write_text(json.dumps(ids, indent=2) + "\n", encoding="utf-8")
    with (out / "cells.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    result.release_rows_by_resolution = dict(sorted(Counter(int(r["resolution"]) for r in rows).items(),
                                                    reverse=True))
    result.min_members = min((int(r["members"]) for r in rows), default=0)
    for kind in result.releases:
        if kind != "presence":
            data = out / kind / ("od.csv" if kind == "od" else "cells.csv")
            with data.open(newline="", encoding="utf-8") as handle:
                result.other_release_rows[kind] = sum(1 for _ in csv.DictReader(handle))
    return out


def summary(result: DemoResult, out: Path) -> str:
    ingest = result.ingest
    rows = ", ".join(f"res {res}: {n}" for res, n in result.release_rows_by_resolution.items())
    return "\n".join([
        f"Demo co-op loaded: {result.residents} residents, week {result.week_start} to {result.week_end} (exclusive)",
        f"  pings accepted {ingest['accepted']:,}; dropped: no consent {ingest['dropped_no_consent']:,}, "
        f"paused {ingest['dropped_paused']:,}, privacy zone {ingest['dropped_privacy_zone']:,}; "
        f"rejected {ingest['rejected']:,}",
        f"  licence {result.licence_id} approved by two board members, fee paid",
        f"  release {result.release_id}: {sum(result.release_rows_by_resolution.values())} rows ({rows}); "
        f"smallest published (noisy) count {result.min_members}",
        *(f"  {kind} release {result.releases[kind]}: {count} rows, files in {out / kind}/"
          for kind, count in result.other_release_rows.items()),
        f"  dividend: pool {result.dividend.get('pool_pence')}p, reserve {result.dividend.get('reserve_pence')}p, "
        f"distributed {result.dividend.get('distributed_pence')}p to {result.dividend.get('members')} members "
        f"for {result.week_start} to {result.week_end}",
        f"  files: {out}/ (cells.csv, cells.geojson, cells.parquet, datapackage.json, preview.svg, "
        "manifest.jws, ids.json; the od and stays releases in od/ and stays/)",
        f"  tokens (demo only, mode 0600): {out}/tokens/" + "{admin,board-1,board-2,board-3,treasurer,modeller,member}.token",
    ])


def _quiet(_message: str) -> None:
    return None


def _say(message: str) -> None:
    print(f"  ... {message}", flush=True)


def load_demo(*, settings: Settings, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED,
              days: int = 7, keyring: Keyring | None = None,
              progress: Callable[[str], None] = _quiet) -> tuple[DemoResult, Path]:
    engine = engine_for(settings.resolved_database_url)
    result = run_story(engine=engine, settings=settings, keyring=keyring or load_keyring(settings),
                       size=size, seed=seed, days=days, progress=progress)
    out = write_demo_files(settings=settings, engine=engine, result=result)
    return result, out


def load_demo_if_empty(settings: Settings) -> None:
    """``make run``'s first start: load the demo into an empty database, then say what to try."""
    if not database_is_empty(engine_for(settings.resolved_database_url)):
        return
    print("Empty database: loading the demo co-op (about a minute)...", flush=True)
    result, out = load_demo(settings=settings, progress=_say)
    print(summary(result, out), flush=True)
