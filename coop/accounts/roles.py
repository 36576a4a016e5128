"""The roles an account may hold (shared by every domain: roles are vocabulary, not tables)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    MEMBER = "member"
    MODELLER = "modeller"
    BOARD = "board"
    TREASURER = "treasurer"
    ADMIN = "admin"
