"""Keyset pagination: ``?limit=`` (1..1000, default 100) and an opaque ``?cursor=``.

Invariant: a cursor is the base64url JSON of the last item's sort key; pages never skip or repeat a
row while the ordering columns are unique together; a malformed or crafted cursor (wrong types,
out-of-range integers, unrepresentable times, NUL characters) is a 422 and never reaches the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Session
from sqlmodel.sql.expression import SelectOfScalar

from coop.kit.crypto import b64url, b64url_decode
from coop.kit.errors import InvalidInput
from coop.kit.timeutil import as_utc

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000



class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def encode_cursor(key: Sequence[Any]) -> str:
    return b64url(json.dumps([_jsonable(v) for v in key], separators=(",", ":")).encode())


def decode_cursor(cursor: str | None, *, arity: int) -> list[Any] | None:
    """The sort key in ``cursor`` (a list of ``arity`` values), None for the first page."""
    if cursor is None or cursor == "":
        return None
    try:
        key = json.loads(b64url_decode(cursor))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput("malformed cursor") from exc
    if not isinstance(key, list) or len(key) != arity:
        raise InvalidInput("malformed cursor")
    return key


_INT_BOUNDS = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}


def _int_bound(column_type: Any) -> int:
    """The exclusive magnitude bound of an integer column (values in [-bound, bound))."""
    if isinstance(column_type, sa.SmallInteger):
        return _INT_BOUNDS["smallint"]
    if isinstance(column_type, sa.BigInteger):
        return _INT_BOUNDS["bigint"]
    return _INT_BOUNDS["integer"]


def _coerce(column: Any, value: Any) -> Any:
    """``value`` as the Python value of ``column``'s type, or InvalidInput (the cursor was crafted).

    Only what ``encode_cursor`` writes is accepted: a string for text and time columns (parsed here, so a
    date that overflows in UTC is refused), an in-range integer for integer columns. Nothing else reaches
    the database, whose refusal would otherwise surface as a 5xx.
    """
    column_type = getattr(column.type, "impl_instance", column.type)
    python_type: type | None
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        python_type = None
    try:
        if python_type is datetime and type(value) is str:
            return as_utc(datetime.fromisoformat(value))
        if python_type is date and type(value) is str:
            return date.fromisoformat(value)
        if python_type is int and type(value) is int:
            bound = _int_bound(column_type)
            if -bound <= value < bound:
                return value
        if python_type not in (datetime, date, int) and type(value) is str and "\x00" not in value:
            return value
    except (ValueError, OverflowError) as exc:
        raise InvalidInput("malformed cursor") from exc
    raise InvalidInput("malformed cursor")


def keyset_page(session: Session, query: SelectOfScalar[R], *, order: Sequence[Any], limit: int,
                cursor: str | None) -> tuple[list[R], str | None]:
    """One page of ``query`` ordered ascending by ``order`` columns, and the cursor of the next."""
    key = decode_cursor(cursor, arity=len(order))
    if key is not None:
        values = [sa.literal(_coerce(column, value), type_=column.type)
                  for column, value in zip(order, key, strict=True)]
        query = query.where(sa.tuple_(*order) > sa.tuple_(*values))
    rows = list(session.exec(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    next_key = [getattr(last, column.key) for column in order]
    return rows, encode_cursor(next_key)
