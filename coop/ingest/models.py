"""The ping table.

Invariants: only the resolution-10 H3 cell (as a signed 64-bit integer) and the time (epoch
milliseconds, UTC) are in the clear; coordinates and optional fields are AES-GCM encrypted under the
member's data key. ``(member_no, client_id)`` is unique, so a resent ping is stored once.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Ping(SQLModel, table=True):
    """One stored location ping."""

    __tablename__ = "ping"
    __table_args__ = (
        sa.UniqueConstraint("member_no", "client_id", name="uq_ping_member_client"),
        sa.Index("ix_ping_member_ts", "member_no", "ts_ms"),
        sa.Index("ix_ping_ts", "ts_ms"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    member_no: int = Field(foreign_key="member_key.no")
    client_id: str = Field(max_length=64)
    ts_ms: int = Field(sa_type=sa.BigInteger)
    cell: int = Field(sa_type=sa.BigInteger)
    blob: bytes = Field(sa_type=sa.LargeBinary)
