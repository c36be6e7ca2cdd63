"""What both benchmarks report: a measured row, and targets printed as PASS/FAIL.

Imported as a sibling module (`python benchmarks/bench_*.py` puts this folder first on the
path); the benchmarks import the installed `gates` package, as any user script would.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Row:
    """One measured path: its per-run times in ms, and how far its result is from the truth."""

    path: str
    samples_ms: list[float]
    max_abs_err: float = 0.0
    note: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "n": len(self.samples_ms),
            "median_ms": self.median_ms,
            "p95_ms": self.p95_ms,
            "mean_ms": self.mean_ms,
        }


@dataclass
class Target:
    """A figure and its limit; `ok` says whether the figure meets it."""

    name: str
    value: float
    limit: str
    ok: bool
    extra: str = ""

    def line(self) -> str:
        extra = f"  ({self.extra})" if self.extra else ""
        return f"  {'PASS' if self.ok else 'FAIL'}  {self.name}: {self.value:.3g} (target {self.limit}){extra}"


def print_targets(targets: list[Target]) -> bool:
    """Print every target as PASS/FAIL; returns whether all passed (for --strict)."""
    print("\ntargets:")
    for t in targets:
        print(t.line())
    return all(t.ok for t in targets)
