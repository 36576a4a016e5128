"""sealing: table families, sealed buckets, cells, pairs and contributions; licence.family_id (backfilled)

Revision ID: 0005_sealing
Revises: 0003_ledger

Every licence issued before this revision gets the presence family of its (purpose, time bucket,
resolution), opened now at the settings' defaults (``COOP_FAMILY_EPSILON_PER_DAY``, ``COOP_DP_DELTA``,
``COOP_K_FLOOR``) and sealed from the earliest start of those licences' periods. These families are
opened without the budget check (the licences were granted before the budget existed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

from coop.kit.db import UTCDateTime

revision: str = "0005_sealing"
down_revision: str | Sequence[str] | None = "0003_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAMILY_FK = "fk_licence_family_id_table_family"


def _create_tables() -> None:
    op.create_table(
        "table_family",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("purpose_code", sa.String(length=60), nullable=False),
        sa.Column("time_bucket", sa.String(length=10), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("epsilon_per_day", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("k_floor", sa.Integer(), nullable=False),
        sa.Column("tau", sa.Integer(), nullable=False),
        sa.Column("sigma", sa.Float(), nullable=False),
        sa.Column("contribution_bound", sa.Integer(), nullable=False),
        sa.Column("coarsest_resolution", sa.Integer(), nullable=False),
        sa.Column("mechanism", sa.String(length=200), nullable=False),
        sa.Column("opened_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_by_licence_id", sa.String(length=36), nullable=True),
        sa.Column("seal_from", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["purpose_code"], ["purpose.code"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "purpose_code", "time_bucket", "resolution", name="uq_table_family_key"),
    )
    op.create_table(
        "sealed_bucket",
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("bucket_start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("bucket_end", UTCDateTime(timezone=True), nullable=False),
        sa.Column("sealed_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["family_id"], ["table_family.id"]),
        sa.PrimaryKeyConstraint("family_id", "bucket_start"),
    )
    op.create_table(
        "sealed_cell",
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("bucket_start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolution", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("cell", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["family_id"], ["table_family.id"]),
        sa.PrimaryKeyConstraint("family_id", "bucket_start", "resolution", "cell"),
    )
    op.create_table(
        "sealed_pair",
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("bucket_start", UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolution", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("origin", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("destination", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["family_id"], ["table_family.id"]),
        sa.PrimaryKeyConstraint("family_id", "bucket_start", "resolution", "origin", "destination"),
    )
    op.create_table(
        "sealed_contribution",
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("buckets", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["family_id"], ["table_family.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("family_id", "member_id", "day"),
    )
    op.create_index("ix_sealed_contribution_member_day", "sealed_contribution", ["member_id", "day"])
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("family_id", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_licence_family_id", ["family_id"], unique=False)
        batch_op.create_foreign_key(FAMILY_FK, "table_family", ["family_id"], ["id"])


def _backfill_families() -> None:
    """One presence family per distinct (purpose, bucket, resolution) of the existing licences."""
    bind = op.get_bind()
    licence = sa.table("licence", sa.column("id", sa.String), sa.column("purpose_code", sa.String),
                       sa.column("dataset", sa.JSON), sa.column("family_id", sa.String))
    groups: dict[tuple[str, str, int], list[tuple[str, date]]] = defaultdict(list)
    for licence_id, purpose_code, dataset in bind.execute(sa.select(licence.c.id, licence.c.purpose_code,
                                                                    licence.c.dataset)):
        start = date.fromisoformat(str(dataset["start"]))
        groups[(purpose_code, str(dataset["time_bucket"]), int(dataset["resolution"]))].append((licence_id, start))
    if not groups:
        return
    from coop.kit.settings import get_settings
    from coop.kit.timeutil import utcnow
    from coop.tables.families import FamilyKey, new_family

    settings, now = get_settings(), utcnow()
    family_table = sa.table("table_family", *(sa.column(name) for name in (
        "id", "kind", "purpose_code", "time_bucket", "resolution", "epsilon_per_day", "delta", "k_floor", "tau",
        "sigma", "contribution_bound", "coarsest_resolution", "mechanism", "opened_by_licence_id",
        "seal_from")), sa.column("opened_at", UTCDateTime(timezone=True)))
    for (purpose_code, time_bucket, resolution), members in sorted(groups.items()):
        key = FamilyKey(kind="presence", purpose_code=purpose_code, time_bucket=time_bucket, resolution=resolution)
        family = new_family(key=key, epsilon_per_day=settings.family_epsilon_per_day, settings=settings, at=now,
                            seal_from=min(start for _, start in members), licence_id=None)
        bind.execute(family_table.insert().values(**family.model_dump()))
        bind.execute(licence.update().where(licence.c.id.in_([licence_id for licence_id, _ in members]))
                     .values(family_id=family.id))


def upgrade() -> None:
    _create_tables()
    _backfill_families()


def downgrade() -> None:
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.drop_constraint(FAMILY_FK, type_="foreignkey")
        batch_op.drop_index("ix_licence_family_id")
        batch_op.drop_column("family_id")
    op.drop_index("ix_sealed_contribution_member_day", table_name="sealed_contribution")
    for table in ("sealed_contribution", "sealed_pair", "sealed_cell", "sealed_bucket", "table_family"):
        op.drop_table(table)
