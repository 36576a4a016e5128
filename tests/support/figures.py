"""Figures the reliability tests collect while they run (printed at the end of the pytest run).

Invariant: only counts of what actually ran (requests sent, cells checked, crashes survived), never
timings: speed is measured by the scripts under bench/.
"""

from __future__ import annotations

from collections import Counter, defaultdict

FIGURES: defaultdict[str, Counter[str]] = defaultdict(Counter)


def count(section: str, what: str, amount: int = 1) -> None:
    FIGURES[section][what] += amount


def summary_lines() -> list[str]:
    return [f"{section}: " + ", ".join(f"{what} {number}" for what, number in sorted(counts.items()))
            for section, counts in sorted(FIGURES.items())]
