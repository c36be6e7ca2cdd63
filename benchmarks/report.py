"""What the benchmarks report: a measured row, targets printed as PASS/FAIL, and the JSON.

Imported as a sibling module (`python benchmarks/bench_*.py` puts this folder first on the
path); the benchmarks import the installed `gates` package, as any user script would.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
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


def print_table(rows: list[Row]) -> None:
    """One line per row: its runs, median, p95 and mean, and its note (when one has a note)."""
    width = max(len(r.path) for r in rows)
    notes = any(r.note for r in rows)
    print(
        f"{'path':<{width}}  {'n':>4}  {'median ms':>10}  {'p95 ms':>8}  {'mean ms':>8}" + ("  note" if notes else "")
    )
    for r in rows:
        line = f"{r.path:<{width}}  {len(r.samples_ms):>4}  {r.median_ms:>10.3f}  {r.p95_ms:>8.3f}  {r.mean_ms:>8.3f}"
        print(line + (f"  {r.note}" if notes else ""))


def print_targets(targets: list[Target]) -> bool:
    """Print every target as PASS/FAIL; returns whether all passed (for --strict)."""
    print("\ntargets:")
    for t in targets:
        print(t.line())
    return all(t.ok for t in targets)


def write_json(path: str | Path, rows: list[Row], targets: list[Target], **env: Any) -> None:
    """The rows, the targets and the machine they ran on (`env` adds to it, e.g. torch's version)."""
    machine = {
        "python": platform.python_version(),
        **env,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    document = {"rows": [r.to_dict() for r in rows], "targets": [asdict(t) for t in targets], "env": machine}
    Path(path).write_text(json.dumps(document, indent=2))
