"""Endpoints of the releases domain (see ../shared/api-contract.md)."""

from __future__ import annotations

from api.routing import domain_router

router = domain_router(tag="releases")
