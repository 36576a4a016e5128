"""The accounting of aggregation/dp.py: each plan meets exactly the (epsilon, delta) asked for, by
OpenDP's own privacy map and conversion; its threshold is the partition-selection bound; the noise
drawn has the scale the plan claims (by property over many draws, never a pinned draw)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import polars as pl
import pytest

from aggregation.dp import (
    Kind,
    NoisePlan,
    add_noise,
    bun_steinke_epsilon,
    cks_epsilon,
    discrete_gaussian_tail,
    exact_plan,
    exposure,
    opendp_epsilon,
    opendp_rho,
    partition_threshold,
    plan_noise,
)
from aggregation.periods import TimeBucket
from aggregation.sealing import seal_cells


def _plan(kind: Kind, bucket: TimeBucket, *, resolution: int = 9, epsilon: float = 0.5,
          k_floor: int = 10) -> NoisePlan:
    return plan_noise(kind=kind, time_bucket=bucket, resolution=resolution, coarsest_resolution=7,
                      epsilon_per_day=epsilon, delta=1e-7, k_floor=k_floor)


def _recomputed(plan: NoisePlan) -> tuple[float, float]:
    """(epsilon, delta) of one member-day, recomputed from the plan's sigma and tau with OpenDP."""
    delta_partition = plan.new_partitions * discrete_gaussian_tail(plan.sigma, plan.tau - 1)
    delta_gaussian = plan.delta - delta_partition
    epsilon = opendp_epsilon(plan.sigma, plan.l2_sensitivity_per_day, delta_gaussian) - math.log1p(-delta_partition)
    return epsilon, delta_gaussian + delta_partition


@pytest.mark.parametrize("resolution", [7, 8, 9, 10])
@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("bucket", list(TimeBucket))
def test_plan_meets_exactly_the_requested_guarantee(kind: Kind, bucket: TimeBucket, resolution: int) -> None:
    plan = _plan(kind, bucket, resolution=resolution)
    reach = exposure(kind, bucket)
    assert plan.levels == resolution - 7 + 1
    assert plan.tables_per_day == reach.tables
    assert plan.contribution_bound == bucket.cells_per_member
    assert plan.new_partitions == plan.tables_per_day * plan.levels * plan.contribution_bound
    # OpenDP's own privacy map of the discrete Gaussian, and zCDP's additive composition per query
    rho_query = plan.squared_sensitivity / (2 * plan.sigma**2)
    assert plan.rho_per_day == pytest.approx(plan.tables_per_day * plan.levels * rho_query, rel=1e-12)
    assert plan.rho_per_day == pytest.approx(opendp_rho(plan.sigma, plan.l2_sensitivity_per_day), rel=1e-15)
    epsilon, delta = _recomputed(plan)
    assert epsilon <= plan.epsilon_per_day
    assert epsilon == pytest.approx(plan.epsilon_per_day, abs=1e-9)
    assert delta == pytest.approx(plan.delta, rel=1e-12)
    assert plan.delta_gaussian > 0 and plan.delta_partition > 0
    assert plan.tau >= plan.k_floor


@pytest.mark.parametrize("epsilon", [0.05, 2.0, 30.0, 1000.0])
def test_other_budgets_are_met_too(epsilon: float) -> None:
    plan = _plan(Kind.PRESENCE, TimeBucket.DAY, epsilon=epsilon)
    recomputed, delta = _recomputed(plan)
    assert recomputed <= epsilon and recomputed == pytest.approx(epsilon, rel=1e-9)
    assert delta == pytest.approx(1e-7, rel=1e-12)


def test_more_budget_means_less_noise_and_a_threshold_shrinking_to_k_floor() -> None:
    plans = [_plan(Kind.PRESENCE, TimeBucket.DAY, epsilon=e) for e in (0.1, 0.5, 2.0, 8.0, 50.0)]
    sigmas = [plan.sigma for plan in plans]
    taus = [plan.tau for plan in plans]
    assert sigmas == sorted(sigmas, reverse=True) and len(set(sigmas)) == len(sigmas)
    assert taus == sorted(taus, reverse=True)
    assert taus[0] > taus[-1] == 10  # the margin over k_floor is gone at a large budget


def test_huge_budget_is_an_exact_plan() -> None:
    plan = exact_plan(kind=Kind.OD, time_bucket=TimeBucket.HOUR, resolution=10, coarsest_resolution=7, k_floor=10)
    assert plan.tau == 10
    assert plan.sigma < 1e-3
    counts = pl.Series("members", list(range(1000)), dtype=pl.Int64)
    assert add_noise(counts, plan=plan).equals(counts)


def test_tau_is_never_below_two() -> None:
    """Publishing noisy >= 1 would show a lone member's cell about half the time, whatever epsilon."""
    assert exact_plan(kind=Kind.PRESENCE, time_bucket=TimeBucket.DAY, resolution=9, coarsest_resolution=9,
                      k_floor=1).tau == 2


def test_a_longer_reach_costs_more_noise() -> None:
    day, week = _plan(Kind.PRESENCE, TimeBucket.DAY), _plan(Kind.PRESENCE, TimeBucket.WEEK)
    stays_day = _plan(Kind.STAYS, TimeBucket.DAY)
    assert day.sigma < stays_day.sigma and day.sigma < week.sigma
    assert exposure(Kind.PRESENCE, TimeBucket.WEEK).squared_sensitivity == 2 * 5
    assert exposure(Kind.OD, TimeBucket.DAY).tables == 3


def test_plans_are_pure_functions_of_their_inputs() -> None:
    first = _plan(Kind.STAYS, TimeBucket.WEEK, resolution=8)
    again = plan_noise(kind="stays", time_bucket="week", resolution=8,  # type: ignore[arg-type]
                       coarsest_resolution=7, epsilon_per_day=0.5, delta=1e-7, k_floor=10)
    assert first == again


def test_public_dict_names_the_mechanism_and_the_unit() -> None:
    plan = _plan(Kind.PRESENCE, TimeBucket.HOUR)
    assert plan.as_public_dict() == {
        "mechanism": "discrete-gaussian-zcdp (OpenDP 0.16)", "privacy_unit": "member-day",
        "epsilon_per_day": 0.5, "delta": 1e-7, "tau": plan.tau, "contribution_bound": 1, "sigma": plan.sigma}


@pytest.mark.parametrize(("field", "value"), [("epsilon_per_day", 0.0), ("epsilon_per_day", math.inf),
                                              ("delta", 0.0), ("delta", 1.0), ("k_floor", 0),
                                              ("resolution", 11), ("coarsest_resolution", 10)])
def test_bad_parameters_are_refused(field: str, value: float) -> None:
    arguments: dict[str, object] = {"kind": Kind.PRESENCE, "time_bucket": TimeBucket.DAY, "resolution": 9,
                                    "coarsest_resolution": 7, "epsilon_per_day": 0.5, "delta": 1e-7,
                                    "k_floor": 10, field: value}
    with pytest.raises(ValueError):
        plan_noise(**arguments)  # type: ignore[arg-type]


# --- The conversion and the tail -------------------------------------------------------------------

@pytest.mark.parametrize("rho", [1e-5, 1e-3, 0.0053, 0.2, 4.5, 300.0])
@pytest.mark.parametrize("delta", [1e-9, 7e-8, 1e-5])
def test_fast_conversion_is_opendps(rho: float, delta: float) -> None:
    sigma = 1.0 / math.sqrt(2.0 * rho)  # d_in = 1
    assert opendp_rho(sigma, 1.0) == pytest.approx(rho, rel=1e-12)
    opendp = opendp_epsilon(sigma, 1.0, delta)
    assert cks_epsilon(rho, delta) == pytest.approx(opendp, rel=1e-9)
    assert opendp < bun_steinke_epsilon(rho, delta)  # the optimal conversion beats the closed form


def _brute_tail(sigma: float, threshold: int) -> float:
    support = np.arange(-int(60 * sigma) - 60, int(60 * sigma) + 61, dtype=np.float64)
    weights = np.exp(-support**2 / (2 * sigma**2))
    return float(weights[support >= threshold].sum() / weights.sum())


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.9, 3.1, 29.17, 203.0])
def test_discrete_gaussian_tail(sigma: float) -> None:
    for threshold in (-3, 0, 1, 2, int(3 * sigma) + 1, int(6 * sigma) + 1):
        assert discrete_gaussian_tail(sigma, threshold) == pytest.approx(_brute_tail(sigma, threshold),
                                                                         rel=1e-9, abs=1e-300)


def test_tail_bound_for_huge_sigma_is_an_upper_bound_and_tight() -> None:
    sigma = 1.2e4
    exact = _brute_tail(sigma, 70_000)
    bound = discrete_gaussian_tail(sigma, 70_000)
    assert exact <= bound <= exact * 1.001


@pytest.mark.parametrize("sigma", [0.5, 4.0, 29.17, 120.0])
def test_partition_threshold_is_the_smallest_safe_one(sigma: float) -> None:
    probability = 1e-9
    tau = partition_threshold(sigma, probability)
    assert discrete_gaussian_tail(sigma, tau - 1) <= probability < discrete_gaussian_tail(sigma, tau - 2)


# --- The noise actually drawn ----------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "bucket"), [(Kind.PRESENCE, TimeBucket.DAY), (Kind.OD, TimeBucket.HOUR)])
def test_noise_has_the_claimed_scale(kind: Kind, bucket: TimeBucket) -> None:
    """20,000 draws: the standard deviation's standard error is 0.5%, so 5% is a 10-sigma tolerance."""
    plan = _plan(kind, bucket)
    samples = 20_000
    counts = pl.Series("members", [1000] * samples, dtype=pl.Int64)
    noisy = add_noise(counts, plan=plan)
    assert noisy.dtype == pl.Int64 and noisy.name == "members"
    noise = (noisy - counts).to_list()
    assert statistics.pstdev(noise) == pytest.approx(plan.sigma, rel=0.05)
    assert abs(statistics.fmean(noise)) < 6 * plan.sigma / math.sqrt(samples)
    within = sum(abs(value) <= plan.sigma for value in noise) / samples
    assert within == pytest.approx(0.6827, abs=0.02)  # Gaussian-shaped, not merely the right variance
    assert len({*noise}) > plan.sigma  # fresh draws, not one offset


def test_sealed_counts_carry_the_claimed_noise() -> None:
    """2,000 daily buckets, one cell of n members each, n far above tau: published - n has std sigma."""
    plan = _plan(Kind.PRESENCE, TimeBucket.DAY)
    cell = 0x89195DA49A3FFFF  # an H3 cell at resolution 9
    members = plan.tau + int(8 * plan.sigma)
    buckets = 2_000
    lines = pl.DataFrame({"bucket": np.repeat(np.arange(buckets, dtype=np.int64), members),
                          "member_no": np.tile(np.arange(members, dtype=np.int64), buckets),
                          "cell": np.full(buckets * members, cell, dtype=np.int64),
                          "weight": np.ones(buckets * members, dtype=np.int64)})
    rows = seal_cells(lines, plan=plan).rows
    assert rows.height == buckets and rows.get_column("resolution").unique().to_list() == [9]
    error = [value - members for value in rows.get_column("members").to_list()]
    assert statistics.pstdev(error) == pytest.approx(plan.sigma, rel=0.1)  # SE 1.6%: 6 SE
    assert min(rows.get_column("members").to_list()) >= plan.tau
