"""A family's noise plan: derived once when the family opens, then fixed by what the family row stores.

Invariant: sealing always uses the stored ``sigma``, ``tau`` and ``contribution_bound`` of the family,
so a later change to the derivation (a new OpenDP, a better accounting) never re-parameterises a family
that is already open; only families opened afterwards get the new derivation.
"""

from __future__ import annotations

import dataclasses
import logging

from aggregation.dp import Kind, NoisePlan, plan_noise
from aggregation.periods import TimeBucket
from coop.tables.models import TableFamily

log = logging.getLogger("coop.tables")


def derive_plan(*, kind: str, time_bucket: str, resolution: int, epsilon_per_day: float, delta: float,
                k_floor: int, coarsest_resolution: int) -> NoisePlan:
    """The noise plan a family with these parameters gets when it opens."""
    return plan_noise(kind=Kind(kind), time_bucket=TimeBucket(time_bucket), resolution=resolution,
                      coarsest_resolution=coarsest_resolution, epsilon_per_day=epsilon_per_day,
                      delta=delta, k_floor=k_floor)


def family_plan(family: TableFamily) -> NoisePlan:
    """The plan sealing uses for ``family``: its stored sigma, tau and bound, whatever derives today."""
    plan = derive_plan(kind=family.kind, time_bucket=family.time_bucket, resolution=family.resolution,
                       epsilon_per_day=family.epsilon_per_day, delta=family.delta, k_floor=family.k_floor,
                       coarsest_resolution=family.coarsest_resolution)
    stored = {"sigma": family.sigma, "tau": family.tau, "contribution_bound": family.contribution_bound}
    if any(getattr(plan, name) != value for name, value in stored.items()):
        log.warning("family %s keeps the noise parameters it was opened with (the derivation changed since)",
                    family.id)
        plan = dataclasses.replace(plan, sigma=family.sigma, tau=family.tau,
                                   contribution_bound=family.contribution_bound)
    return plan
