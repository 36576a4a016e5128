"""Differential privacy of sealed tables: the noise plan of a table family and the noise itself (pure).

Privacy unit: one member's data in one UTC day (member-day); neighbouring datasets differ by adding or
removing one member-day. Every sealed count gets discrete Gaussian noise from OpenDP (exact sampling, no
floating-point attack surface); never numpy's or Python's random.

Invariants (derived in docs/privacy-model.md, "The accounting"; tested in tests/unit/test_dp_accounting.py):
- one member-day reaches at most ``tables_per_day`` sealed tables of a family; each table runs ``levels``
  adaptive count queries (finest resolution, then each parent level on what was not published); in each
  query it changes at most ``squared_sensitivity`` counts, each by at most 1 (L2 sensitivity
  ``sqrt(squared_sensitivity)``) and opens at most ``contribution_bound`` partitions of its own;
- the whole day is then a ``rho_per_day``-zCDP composition (OpenDP's own privacy map), converted to
  ``(eps_g, delta_gaussian)`` by OpenDP's zCDP-to-approxDP conversion; partition selection (publish only
  noisy counts ``>= tau``; at most ``new_partitions`` keys hold the member alone) spends
  ``delta_partition = m P(1 + Z >= tau)``, and the day is ``(eps_g + ln(1/(1 - delta_partition)),
  delta_gaussian + delta_partition)``-DP, both equal to the request;
- ``tau >= k_floor``; a plan is a pure function of its inputs (re-derive it, never trust a stored one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
import opendp.prelude as dp
import polars as pl

from aggregation.kanon import FINEST_RESOLUTION
from aggregation.periods import DAY_MS, TimeBucket

dp.enable_features("contrib")

MECHANISM = "discrete-gaussian-zcdp (OpenDP 0.16)"
PRIVACY_UNIT = "member-day"
# Stays and trips are detected over a read window around each bucket (a stay spans midnight). The
# accounting allows a bucket's stays/od contributions to depend on the member's pings at most this far
# before the bucket starts and after it ends; the sealer must not read further.
DERIVED_KIND_LOOKBACK_MS = DAY_MS
DERIVED_KIND_LOOKAHEAD_MS = DAY_MS
_SPLIT_GRID = tuple(step / 20 for step in range(1, 20))  # share of delta given to the Gaussian part


class Kind(StrEnum):
    PRESENCE = "presence"
    STAYS = "stays"
    OD = "od"


@dataclass(frozen=True)
class Exposure:
    """How far one member-day reaches into one family (per kind and time bucket).

    ``tables``: sealed tables (buckets) whose counts the member-day can change. ``squared_sensitivity``:
    per table and level, the most counts it changes (each by at most 1). ``replaces``: whether the member
    can stay in a table with other cells after the day is removed (then partitions of its own can appear
    on both sides of the neighbouring pair).
    """

    tables: int
    squared_sensitivity: int
    partitions: int
    replaces: bool


def exposure(kind: Kind, time_bucket: TimeBucket) -> Exposure:
    """The reach of one member-day (docs/privacy-model.md, "Step by step: what one member-day can change")."""
    bound = time_bucket.cells_per_member
    if kind is Kind.PRESENCE:
        if time_bucket is TimeBucket.WEEK:  # the member's other days stay: the top-L set can swap
            return Exposure(tables=1, squared_sensitivity=2 * bound, partitions=bound, replaces=True)
        tables = 24 if time_bucket is TimeBucket.HOUR else 1
        return Exposure(tables=tables, squared_sensitivity=bound, partitions=bound, replaces=False)
    # stays/od: each bucket is derived from a read window reaching a day either side, so a member-day
    # reaches every bucket whose window overlaps it, and the member may keep other stays in each.
    tables = {TimeBucket.HOUR: 72, TimeBucket.DAY: 3, TimeBucket.WEEK: 2}[time_bucket]
    return Exposure(tables=tables, squared_sensitivity=2 * bound, partitions=bound, replaces=True)


@dataclass(frozen=True)
class NoisePlan:
    """One table family's noise and threshold; derived by :func:`plan_noise`, never stored blindly."""

    kind: Kind
    time_bucket: TimeBucket
    resolution: int
    coarsest_resolution: int
    epsilon_per_day: float
    delta: float
    k_floor: int
    contribution_bound: int  # L: 1 per hour, 3 per day, 5 per week (cells, or od pairs)
    levels: int  # resolution - coarsest_resolution + 1 (each level: fresh noise)
    tables_per_day: int  # sealed tables one member-day reaches (a weekly table is charged to each day)
    rho_per_day: float  # zCDP budget of one member-day for this family
    sigma: float  # standard deviation of the discrete Gaussian noise on every count
    tau: int  # publication threshold, >= k_floor
    mechanism: str
    squared_sensitivity: int = 0  # per table and level: counts changed by one member-day
    new_partitions: int = 0  # m: partitions of its own one member-day can open in a day
    delta_gaussian: float = 0.0  # the share of delta converted from zCDP
    delta_partition: float = 0.0  # m * P(1 + noise >= tau), spent on partition selection

    @property
    def l2_sensitivity_per_day(self) -> float:
        """The L2 norm of all the day's count changes: the d_in of OpenDP's privacy map."""
        return math.sqrt(self.tables_per_day * self.levels * self.squared_sensitivity)

    def as_public_dict(self) -> dict[str, object]:
        return {"mechanism": self.mechanism, "privacy_unit": PRIVACY_UNIT,
                "epsilon_per_day": self.epsilon_per_day, "delta": self.delta, "tau": self.tau,
                "contribution_bound": self.contribution_bound, "sigma": self.sigma}


# --- OpenDP: the mechanism, its privacy map and the zCDP conversion ---------------------------------

_SPACE = (dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=float))


@lru_cache(maxsize=64)
def _gaussian(sigma: float) -> Any:
    """OpenDP's discrete Gaussian over integer vectors (L2 distance): the measurement used on counts."""
    return dp.m.make_gaussian(*_SPACE, scale=sigma)


def opendp_rho(sigma: float, l2_sensitivity: float) -> float:
    """OpenDP's own zCDP privacy map of the discrete Gaussian at ``sigma``."""
    return float(_gaussian(sigma).map(l2_sensitivity))


def bun_steinke_epsilon(rho: float, delta: float) -> float:
    """rho-zCDP implies (rho + 2 sqrt(rho ln(1/delta)), delta)-DP (Bun and Steinke 2016)."""
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def cks_epsilon(rho: float, delta: float) -> float:
    """The optimal conversion of Canonne, Kamath and Steinke (2020), as OpenDP implements it.

    epsilon = min over alpha > 1 of alpha rho + (ln(1/delta) + alpha ln(1 - 1/alpha) - ln(alpha - 1)) /
    (alpha - 1). Used only to search fast; the plan's final figures come from OpenDP.
    """
    def at(log_excess: float) -> float:  # alpha = 1 + e^log_excess
        excess = math.exp(log_excess)
        alpha = 1.0 + excess
        return (alpha * rho + (math.log(1.0 / delta) + alpha * math.log1p(-1.0 / alpha)
                               - log_excess) / excess)

    centre = 0.5 * math.log(math.log(1.0 / delta) / rho)  # Bun-Steinke's optimum, alpha - 1 = sqrt(ln(1/delta)/rho)
    low, high = centre - 6.0, centre + 6.0
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):  # golden section (unimodal in log(alpha - 1)): the bracket shrinks to ~4e-12
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if at(left) < at(right):
            high = right
        else:
            low = left
    return min(at((low + high) / 2.0), bun_steinke_epsilon(rho, delta))


OPENDP_EPSILON_LIMIT = 700.0  # beyond, OpenDP's conversion overflows a float (e^epsilon)


def fast_epsilon(rho: float, delta_gaussian: float) -> float:
    """The conversion :func:`opendp_epsilon` makes, computed in Python (for the searches)."""
    if bun_steinke_epsilon(rho, delta_gaussian) > OPENDP_EPSILON_LIMIT:
        return bun_steinke_epsilon(rho, delta_gaussian)
    return cks_epsilon(rho, delta_gaussian)


def opendp_epsilon(sigma: float, l2_sensitivity: float, delta_gaussian: float) -> float:
    """Epsilon of the discrete Gaussian at ``delta_gaussian`` by OpenDP's zCDP-to-approxDP conversion;
    for budgets beyond its float range (epsilon > 700: exact-oracle plans only) the closed form of Bun
    and Steinke, which is looser, so still a valid bound."""
    rho = opendp_rho(sigma, l2_sensitivity)
    if bun_steinke_epsilon(rho, delta_gaussian) > OPENDP_EPSILON_LIMIT:
        return bun_steinke_epsilon(rho, delta_gaussian)
    approx: Any = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(_gaussian(sigma)), delta_gaussian)
    return float(approx.map(l2_sensitivity)[0])


# --- The discrete Gaussian tail (partition selection) ----------------------------------------------

def _normaliser(sigma: float) -> float:
    """sum over all integers k of e^(-k^2 / 2 sigma^2).

    By Poisson summation it is sigma sqrt(2 pi) (1 + 2 sum_k e^(-2 pi^2 sigma^2 k^2)); from sigma = 3 the
    correction is below e^-177, so the closed form is exact in floating point."""
    if sigma >= 3.0:
        return sigma * math.sqrt(2.0 * math.pi)
    steps = np.arange(1, math.ceil(40.0 * sigma) + 2, dtype=np.float64)
    return 1.0 + 2.0 * float(np.sum(np.exp(-np.square(steps) / (2.0 * sigma * sigma))))


def discrete_gaussian_tail(sigma: float, threshold: int) -> float:
    """P(Z >= threshold) for Z discrete Gaussian with scale ``sigma``.

    Sums the terms from ``threshold`` until they fall below 1e-17 of the first (exact in floating
    point); beyond sigma = 10^4, the rigorous upper bound (e^(-t^2/2s^2) + s sqrt(pi/2) erfc(t / s sqrt 2))
    / (s sqrt(2 pi)).
    """
    if threshold <= 0:  # symmetry: P(Z >= t) = 1 - P(Z >= 1 - t)
        return 1.0 - discrete_gaussian_tail(sigma, 1 - threshold)
    two_var = 2.0 * sigma * sigma
    if sigma > 1e4:
        head = math.exp(-threshold * threshold / two_var)
        integral = sigma * math.sqrt(math.pi / 2.0) * math.erfc(threshold / (sigma * math.sqrt(2.0)))
        return min(1.0, (head + integral) / _normaliser(sigma))
    last = math.sqrt(threshold * threshold + 80.0 * two_var)  # e^-40 of the first term beyond
    steps = np.arange(threshold, math.ceil(last) + 1, dtype=np.float64)
    return float(np.sum(np.exp(-np.square(steps) / two_var))) / _normaliser(sigma)


def partition_threshold(sigma: float, probability: float) -> int:
    """The smallest integer t with P(1 + Z >= t) <= ``probability`` (a lone member's cell published)."""
    low, high = 1, 2
    while discrete_gaussian_tail(sigma, high - 1) > probability:
        low, high = high, 2 * high
    while low < high:  # the tail decreases in t
        middle = (low + high) // 2
        if discrete_gaussian_tail(sigma, middle - 1) <= probability:
            high = middle
        else:
            low = middle + 1
    return low


# --- The plan -------------------------------------------------------------------------------------

def _rho_for(epsilon: float, delta_gaussian: float) -> float:
    """The largest rho whose conversion at ``delta_gaussian`` stays within ``epsilon``."""
    low, high = 1e-12, max(1.0, epsilon)
    while fast_epsilon(high, delta_gaussian) < epsilon:
        low, high = high, 2.0 * high
    while high - low > 1e-10 * low:  # geometric bisection: ~50 steps from any bracket
        middle = math.sqrt(low * high)
        low, high = (middle, high) if fast_epsilon(middle, delta_gaussian) <= epsilon else (low, middle)
    return low


Conversion = Callable[[float, float, float], float]  # (sigma, l2 sensitivity, delta_gaussian) -> epsilon


def _fast_conversion(sigma: float, l2_sensitivity: float, delta_gaussian: float) -> float:
    return fast_epsilon(l2_sensitivity * l2_sensitivity / (2.0 * sigma * sigma), delta_gaussian)


def _guarantee(sigma: float, *, tau: int, d_in: float, partitions: int, delta: float,
               conversion: Conversion = opendp_epsilon) -> tuple[float, float]:
    """(epsilon, delta_gaussian) one member-day costs with noise ``sigma`` and threshold ``tau``.

    Partition selection spends delta_p = m P(1 + Z >= tau); the day is then (eps_g + ln(1/(1 - delta_p)),
    delta_g + delta_p)-DP. Epsilon is infinite when delta_p alone would spend all of delta.
    """
    delta_partition = partitions * discrete_gaussian_tail(sigma, tau - 1)
    delta_gaussian = delta - delta_partition
    if delta_gaussian <= 0.0:
        return math.inf, delta_gaussian
    return conversion(sigma, d_in, delta_gaussian) - math.log1p(-delta_partition), delta_gaussian


def _smallest_meeting(meets: Callable[[float], bool], guess: float) -> float:
    """The smallest sigma for which ``meets`` holds (monotone: larger sigma meets once one does, near
    the answer), searched outwards from ``guess`` then bisected to a relative 1e-12."""
    step, high = 1e-9, guess
    while not meets(high):
        high, step = guess * (1.0 + step), step * 16.0
    step, low = 1e-9, high / (1.0 + 1e-9)
    while meets(low):
        high, step = low, step * 16.0
        low = high / (1.0 + step)
    while high - low > 1e-12 * high:
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        low, high = (low, middle) if meets(middle) else (middle, high)
    return high


def _smallest_sigma(*, epsilon: float, tau: int, d_in: float, partitions: int, delta: float,
                    guess: float) -> float:
    """The smallest sigma meeting (epsilon, delta) at ``tau``: found with the fast conversion, then
    settled with OpenDP's own (they agree to ~1e-16, so the second search takes a few calls)."""
    def meets_with(conversion: Conversion) -> Callable[[float], bool]:
        return lambda sigma: _guarantee(sigma, tau=tau, d_in=d_in, partitions=partitions, delta=delta,
                                        conversion=conversion)[0] <= epsilon

    fast = _smallest_meeting(meets_with(_fast_conversion), guess)
    return _smallest_meeting(meets_with(opendp_epsilon), fast)


def _validate(*, resolution: int, coarsest_resolution: int, epsilon_per_day: float, delta: float,
              k_floor: int) -> None:
    if not 0 <= coarsest_resolution <= resolution <= FINEST_RESOLUTION:
        raise ValueError(f"need 0 <= coarsest_resolution <= resolution <= {FINEST_RESOLUTION}")
    if not (math.isfinite(epsilon_per_day) and epsilon_per_day > 0.0):
        raise ValueError("epsilon_per_day must be a positive finite number")
    if not 0.0 < delta < 1.0:
        raise ValueError("delta must be in (0, 1)")
    if k_floor < 1:
        raise ValueError("k_floor must be at least 1")


@lru_cache(maxsize=256)
def _plan(kind: Kind, time_bucket: TimeBucket, resolution: int, coarsest_resolution: int,
          epsilon_per_day: float, delta: float, k_floor: int) -> NoisePlan:
    reach = exposure(kind, time_bucket)
    levels = resolution - coarsest_resolution + 1
    d_in = math.sqrt(reach.tables * levels * reach.squared_sensitivity)
    partitions = reach.tables * levels * reach.partitions
    # 1. Split delta between the Gaussian part and partition selection so that tau + sigma (the true
    #    count published with ~84% probability) is smallest, with the fast CKS conversion.
    best: tuple[float, int, float] | None = None
    for share in _SPLIT_GRID:
        sigma = d_in / math.sqrt(2.0 * _rho_for(epsilon_per_day, share * delta))
        tau = max(k_floor, partition_threshold(sigma, (1.0 - share) * delta / partitions))
        if best is None or tau + sigma < best[1] + best[2]:
            best = (share, tau, sigma)
    assert best is not None
    _, tau, sigma = best
    # 2. At that tau, the smallest sigma meeting (epsilon, delta) exactly by OpenDP's own accounting:
    #    the slack of the integer tau goes back to the Gaussian part.
    sigma = _smallest_sigma(epsilon=epsilon_per_day, tau=tau, d_in=d_in, partitions=partitions,
                            delta=delta, guess=sigma)
    _, delta_gaussian = _guarantee(sigma, tau=tau, d_in=d_in, partitions=partitions, delta=delta)
    return NoisePlan(kind=kind, time_bucket=time_bucket, resolution=resolution,
                     coarsest_resolution=coarsest_resolution, epsilon_per_day=epsilon_per_day,
                     delta=delta, k_floor=k_floor, contribution_bound=time_bucket.cells_per_member,
                     levels=levels, tables_per_day=reach.tables, rho_per_day=opendp_rho(sigma, d_in),
                     sigma=sigma, tau=tau, mechanism=MECHANISM,
                     squared_sensitivity=reach.squared_sensitivity, new_partitions=partitions,
                     delta_gaussian=delta_gaussian, delta_partition=delta - delta_gaussian)


def plan_noise(*, kind: Kind, time_bucket: TimeBucket, resolution: int, coarsest_resolution: int,
               epsilon_per_day: float, delta: float, k_floor: int) -> NoisePlan:
    """The noise and threshold that make one family cost exactly (epsilon_per_day, delta) per member-day.

    Deterministic (a pure function of its arguments, cached); see docs/privacy-model.md, "The accounting".
    """
    _validate(resolution=resolution, coarsest_resolution=coarsest_resolution,
              epsilon_per_day=epsilon_per_day, delta=delta, k_floor=k_floor)
    return _plan(Kind(kind), TimeBucket(time_bucket), int(resolution), int(coarsest_resolution),
                 float(epsilon_per_day), float(delta), int(k_floor))


EXACT_EPSILON_PER_DAY = 1e9


def exact_plan(*, kind: Kind, time_bucket: TimeBucket, resolution: int, coarsest_resolution: int,
               k_floor: int, delta: float = 1e-7) -> NoisePlan:
    """A plan with a huge budget: sigma ~ 1e-4, so noisy counts are the exact ones and tau == k_floor
    (for oracle tests and the maths' documentation; never for a real family)."""
    return plan_noise(kind=kind, time_bucket=time_bucket, resolution=resolution,
                      coarsest_resolution=coarsest_resolution, epsilon_per_day=EXACT_EPSILON_PER_DAY,
                      delta=delta, k_floor=k_floor)


def add_noise(counts: pl.Series, *, plan: NoisePlan) -> pl.Series:
    """Each count plus independent discrete Gaussian noise of scale ``plan.sigma`` (one OpenDP call)."""
    if counts.len() == 0:
        return pl.Series(counts.name, [], dtype=pl.Int64)
    if counts.null_count():
        raise ValueError("counts must not be null")
    noisy = _gaussian(plan.sigma)(counts.cast(pl.Int64).to_list())
    return pl.Series(counts.name, noisy, dtype=pl.Int64)
