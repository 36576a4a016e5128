"""Query parameters shared by every router (the kernel's pagination knows nothing of FastAPI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from coop.kit.pagination import MAX_LIMIT

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..1000)")]
CursorQuery = Annotated[str | None, Query(max_length=500, description="From the previous page's next_cursor")]
