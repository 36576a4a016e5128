"""Largest-remainder allocation of whole pence (pure: no database, no I/O).

Invariants: the shares sum exactly to ``amount``; each share is the floor of its exact share
``amount * weight / total`` or that floor + 1; the leftover pence go to the largest fractional parts,
ties to the smaller member id; a zero weight gets 0; the result does not depend on the input order.
"""

from __future__ import annotations

from collections.abc import Mapping


def allocate_largest_remainder(amount: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split ``amount`` pence between the keys of ``weights`` in proportion to their weights."""
    if amount < 0:
        raise ValueError("amount must not be negative")
    if any(weight < 0 for weight in weights.values()):
        raise ValueError("weights must not be negative")
    total = sum(weights.values())
    if total == 0:
        if amount == 0:
            return dict.fromkeys(weights, 0)
        raise ValueError("cannot allocate a positive amount without a positive weight")
    shares: dict[str, int] = {}
    remainders: list[tuple[int, str]] = []
    for member, weight in weights.items():
        share, remainder = divmod(amount * weight, total)
        shares[member] = share
        if remainder:
            remainders.append((-remainder, member))
    leftover = amount - sum(shares.values())
    remainders.sort()
    for _, member in remainders[:leftover]:
        shares[member] += 1
    return shares
