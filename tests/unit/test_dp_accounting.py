"""The accounting of aggregation/dp.py: each plan meets exactly the (epsilon, delta) asked for, by
OpenDP's own privacy map and conversion, and its threshold is the partition-selection bound."""

from __future__ import annotations

import math

import pytest

from aggregation.dp import (
    Kind,
    NoisePlan,
    discrete_gaussian_tail,
    exact_plan,
    opendp_epsilon,
    opendp_rho,
    plan_noise,
)
from aggregation.periods import TimeBucket


def _default(kind: Kind, bucket: TimeBucket, resolution: int = 9) -> NoisePlan:
    return plan_noise(kind=kind, time_bucket=bucket, resolution=resolution, coarsest_resolution=7,
                      epsilon_per_day=0.5, delta=1e-7, k_floor=10)


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("bucket", list(TimeBucket))
def test_plan_meets_the_requested_guarantee_by_opendp_accounting(kind: Kind, bucket: TimeBucket) -> None:
    plan = _default(kind, bucket)
    d_in = plan.l2_sensitivity_per_day
    assert plan.rho_per_day == pytest.approx(opendp_rho(plan.sigma, d_in), rel=1e-12)
    assert plan.rho_per_day == pytest.approx(d_in**2 / (2 * plan.sigma**2), rel=1e-9)
    delta_partition = plan.new_partitions * discrete_gaussian_tail(plan.sigma, plan.tau - 1)
    assert delta_partition == pytest.approx(plan.delta_partition, rel=1e-9)
    epsilon = opendp_epsilon(plan.sigma, d_in, plan.delta - delta_partition) - math.log1p(-delta_partition)
    assert epsilon <= plan.epsilon_per_day
    assert epsilon == pytest.approx(0.5, abs=1e-9)
    assert plan.delta_gaussian + plan.delta_partition == pytest.approx(1e-7, rel=1e-12)
    assert plan.tau >= plan.k_floor


def test_huge_budget_is_exact() -> None:
    plan = exact_plan(kind=Kind.PRESENCE, time_bucket=TimeBucket.DAY, resolution=9, coarsest_resolution=7,
                      k_floor=10)
    assert plan.tau == 10
    assert plan.sigma < 1e-3
