"""Largest-remainder allocation: exact sums, floor-or-floor+1 shares, ties to the smaller member id."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coop.ledger.allocation import allocate_largest_remainder

member_ids = st.text(alphabet="0123456789abcdef-", min_size=1, max_size=12)
weights_st = st.dictionaries(member_ids, st.integers(min_value=0, max_value=10**6), min_size=1, max_size=60)


@given(amount=st.integers(min_value=0, max_value=10**12), weights=weights_st)
def test_shares_sum_exactly_and_are_floor_or_floor_plus_one(amount: int, weights: dict[str, int]) -> None:
    total = sum(weights.values())
    if total == 0:
        if amount == 0:
            assert allocate_largest_remainder(amount, weights) == dict.fromkeys(weights, 0)
        else:
            with pytest.raises(ValueError):
                allocate_largest_remainder(amount, weights)
        return
    shares = allocate_largest_remainder(amount, weights)
    assert set(shares) == set(weights)
    assert sum(shares.values()) == amount
    for member, weight in weights.items():
        exact = Fraction(amount * weight, total)
        floor = exact.numerator // exact.denominator
        assert shares[member] in (floor, floor + 1), (member, exact, shares[member])
        if weight == 0:
            assert shares[member] == 0


@given(amount=st.integers(min_value=0, max_value=10**9), weights=weights_st)
def test_leftover_goes_to_the_largest_remainders_then_smaller_ids(amount: int, weights: dict[str, int]) -> None:
    total = sum(weights.values())
    if total == 0:
        return
    shares = allocate_largest_remainder(amount, weights)
    # Everyone who got the extra penny ranks (remainder desc, id asc) before everyone who did not.
    rank = {member: (-((amount * w) % total), member) for member, w in weights.items()}
    extra = [m for m in weights if shares[m] == amount * weights[m] // total + 1]
    plain = [m for m in weights if shares[m] == amount * weights[m] // total and (amount * weights[m]) % total]
    if extra and plain:
        assert max(rank[m] for m in extra) < min(rank[m] for m in plain)


@given(amount=st.integers(min_value=0, max_value=10**9), weights=weights_st)
def test_result_does_not_depend_on_input_order(amount: int, weights: dict[str, int]) -> None:
    if sum(weights.values()) == 0:
        return
    reversed_weights = dict(reversed(list(weights.items())))
    assert allocate_largest_remainder(amount, weights) == allocate_largest_remainder(amount, reversed_weights)


def test_ties_go_to_the_smaller_member_id() -> None:
    assert allocate_largest_remainder(2, {"c": 1, "a": 1, "b": 1}) == {"a": 1, "b": 1, "c": 0}
    assert allocate_largest_remainder(1, {"b": 1, "a": 1}) == {"a": 1, "b": 0}


def test_largest_fraction_wins_the_leftover_penny() -> None:
    # 10 * 1/6 = 1.67, 10 * 2/6 = 3.33, 10 * 3/6 = 5: floors 1+3+5 = 9, the leftover penny goes to "x" (0.67).
    assert allocate_largest_remainder(10, {"x": 1, "y": 2, "z": 3}) == {"x": 2, "y": 3, "z": 5}


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        allocate_largest_remainder(-1, {"a": 1})
    with pytest.raises(ValueError):
        allocate_largest_remainder(5, {"a": -1, "b": 2})
    with pytest.raises(ValueError):
        allocate_largest_remainder(5, {})
