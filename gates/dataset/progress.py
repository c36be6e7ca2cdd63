"""How far the curation of a dataset has come: counts, and the line a node or browser shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol


class _Decided(Protocol):
    @property
    def route(self) -> int: ...

    @property
    def label(self) -> str: ...


@dataclass(frozen=True)
class RouteCount:
    """How many files were decided as one route under one label."""

    route: int
    label: str
    count: int


@dataclass(frozen=True)
class Progress:
    """Counts over the files of a listing.

    Attributes:
        total: the files.
        decided: those with a decision.
        routes: the decided ones by (route, label), in route order.
    """

    total: int
    decided: int
    routes: tuple[RouteCount, ...]

    @property
    def undecided(self) -> int:
        return self.total - self.decided


def count(paths: Iterable[str], decisions: Mapping[str, _Decided]) -> Progress:
    """The Progress of the files `paths` (a listing's) under `decisions` (the journal's).

    A decision for a file no longer in the listing is not counted.
    """
    total = 0
    by_route: Counter[tuple[int, str]] = Counter()
    for path in paths:
        total += 1
        d = decisions.get(path)
        if d is not None:
            by_route[(d.route, d.label)] += 1
    routes = tuple(RouteCount(r, label, n) for (r, label), n in sorted(by_route.items()))
    return Progress(total, sum(by_route.values()), routes)


def format_progress(progress: Progress) -> str:
    """The line to show: "1,234 / 5,000 decided: 900 keep · 300 drop · 34 fix".

    Routes without a label are shown as "route 3"; nothing decided yet ends at "decided".
    """
    line = f"{progress.decided:,} / {progress.total:,} decided"
    if not progress.routes:
        return line
    parts = [f"{r.count:,} {r.label or f'route {r.route}'}" for r in progress.routes]
    return f"{line}: {' · '.join(parts)}"
