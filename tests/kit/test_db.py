"""Database kernel: read snapshots do not block writers and do not see later commits."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from coop.kit.db import read_snapshot, session_scope
from migrations.seed import purpose_table


def test_read_snapshot_sees_a_consistent_view_while_a_writer_commits(engine: Engine) -> None:
    with read_snapshot(engine) as reader:
        before = reader.execute(sa.text("SELECT count(*) FROM purpose")).scalar_one()
        with session_scope(engine) as writer:  # would time out if the reader held the write lock
            writer.execute(purpose_table.insert().values(code="x-test", title="t", description="d",
                                                         dpv="dpv:Test", policy_version="1"))
        during = reader.execute(sa.text("SELECT count(*) FROM purpose")).scalar_one()
    with session_scope(engine) as after_session:
        after = after_session.execute(sa.text("SELECT count(*) FROM purpose")).scalar_one()
    assert during == before
    assert after == before + 1


def test_settings_refuse_a_k_floor_below_two() -> None:
    import pytest
    from pydantic import ValidationError

    from coop.kit.settings import Settings

    with pytest.raises(ValidationError):
        Settings(k_floor=1)
