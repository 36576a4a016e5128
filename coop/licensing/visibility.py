"""Who may see which licence request, licence and release: every rule side by side, in one place.

Invariant: anything a caller may not see answers 404 exactly as an id that never existed does, so the
existence of another modeller's request, licence or release is never revealed. Callers' roles come
from their account (``Principal.has``); ownership from the row's requester or licensee id.

| resource          | board | treasurer | its modeller (requester / licensee) | anyone else |
|-------------------|-------|-----------|--------------------------------------|-------------|
| licence request   | all   | none      | own                                  | none        |
| licence           | all   | all       | own                                  | none        |
| release, files    | all   | none      | own (files only while licence active)| none        |
"""

from __future__ import annotations

from coop.accounts.roles import Role
from coop.accounts.service import Principal


def sees_every_request(caller: Principal) -> bool:
    return caller.has(Role.BOARD)


def may_see_request(caller: Principal, *, requester_id: str) -> bool:
    return sees_every_request(caller) or requester_id == caller.id


def sees_every_licence(caller: Principal) -> bool:
    """The board governs licences; the treasurer invoices and records their payments."""
    return caller.has(Role.BOARD) or caller.has(Role.TREASURER)


def may_see_licence(caller: Principal, *, licensee_id: str) -> bool:
    return sees_every_licence(caller) or licensee_id == caller.id


def may_see_releases_of(caller: Principal, *, licensee_id: str) -> bool:
    """Releases (and building them) belong to the licensee; the board audits them."""
    return caller.has(Role.BOARD) or licensee_id == caller.id


def downloads_regardless_of_status(caller: Principal) -> bool:
    """The board may still read a revoked or expired licence's files (audit); the licensee may not."""
    return caller.has(Role.BOARD)
