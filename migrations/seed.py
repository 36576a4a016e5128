"""Seed data shared by the migrations and the test harness (the six purposes of the contract)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

POLICY_VERSION = "1"

PURPOSES = [
    ("transport-planning", "Transport planning", "dpv:ImproveTransportMobility",
     "Modelling how residents travel so that routes, timetables and roads serve them better."),
    ("public-health", "Public health", "dpv:ImproveHealthcare",
     "Understanding access to healthcare, active travel and exposure, to improve residents' health."),
    ("urban-planning", "Urban planning", "dpv:PublicPolicyMaking",
     "Informing where housing, services and public spaces are planned across the city region."),
    ("environment", "Environment", "dpv:PublicBenefit",
     "Estimating emissions, air-quality exposure and green-space use for environmental policy."),
    ("academic-research", "Academic research", "dpv:AcademicResearch",
     "Peer-reviewed research by universities, under ethics approval, published openly."),
    ("commercial-insights", "Commercial insights", "dpv:SellInsightsFromData",
     "Aggregated insights licensed to businesses for a fee that returns to members as dividends."),
]

purpose_table = sa.table(
    "purpose",
    sa.column("code", sa.String), sa.column("title", sa.String), sa.column("description", sa.Text),
    sa.column("dpv", sa.String), sa.column("policy_version", sa.String),
)


def purpose_rows() -> list[dict[str, str]]:
    return [{"code": code, "title": title, "dpv": dpv, "description": description,
             "policy_version": POLICY_VERSION} for code, title, dpv, description in PURPOSES]


def insert_purposes(connection: Connection) -> None:
    connection.execute(purpose_table.insert(), purpose_rows())
