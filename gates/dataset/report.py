"""What to show about a dataset folder: its progress line, its counts, and the buckets of the kept set.

The Dataset Load node and the slot browser show the same report, so both come from here as
JSON-ready data. The kept set is the route labelled "keep" when one is, else the first route;
its buckets are sd-scripts' (`buckets.BucketRules`) over the sizes the journal recorded when
each file was decided, so no image is opened again to count them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from .buckets import BucketCounts, BucketRules, bucket_counts
from .errors import DatasetError
from .journal import Decision, Journal
from .progress import Progress, format_progress
from .roots import Roots
from .scan import MAX_DEPTH, scan

KEEP_LABEL = "keep"


def kept_route(progress: Progress) -> int | None:
    """The route (0-based) whose files are the kept set: labelled "keep", else the first decided one."""
    for r in progress.routes:
        if r.label.strip().lower() == KEEP_LABEL:
            return r.route
    return progress.routes[0].route if progress.routes else None


def kept_buckets(
    paths: Iterable[str], decisions: Mapping[str, Decision], route: int, rules: BucketRules
) -> list[dict[str, Any]]:
    """[{"bucket": "832x1216", "count": n}, ...] of the files of `paths` decided as `route`
    (sizes unknown to the journal left out), and {"bucket": "too small", ...} when some fit none."""
    sizes = []
    for path in paths:
        d = decisions.get(path)
        if d is not None and d.route == route and d.width and d.height:
            sizes.append((d.width, d.height))
    return bucket_rows(bucket_counts(sizes, rules))


def bucket_rows(counts: BucketCounts) -> list[dict[str, Any]]:
    """Bucket counts as the node and the browser show them: [{"bucket": "832x1216", "count": n},
    ...] in bucket order, then {"bucket": "too small", ...} when some images fit none."""
    rows: list[dict[str, Any]] = [{"bucket": str(b), "count": n} for b, n in counts.counts.items()]
    if counts.too_small:
        rows.append({"bucket": "too small", "count": counts.too_small})
    return rows


def report(
    progress: Progress,
    paths: Iterable[str],
    decisions: Mapping[str, Decision],
    rules: BucketRules | None = None,
) -> dict[str, Any]:
    """The report of one dataset: {"progress", "total", "decided", "routes", "kept", "buckets"}."""
    kept = kept_route(progress)
    return {
        "progress": format_progress(progress),
        "total": progress.total,
        "decided": progress.decided,
        "routes": [{"route": r.route, "label": r.label, "count": r.count} for r in progress.routes],
        "kept": kept,
        "buckets": [] if kept is None else kept_buckets(paths, decisions, kept, rules or BucketRules()),
    }


def folder_report(folder: str, roots: Roots, depth: int = 0) -> dict[str, Any]:
    """`report` of the dataset folder `folder` (listed to `depth`), with its "folder", resolved.

    Raises:
        RootRefused: outside the allowed roots.
        DatasetError: not a folder, or its journal cannot be read.
    """
    if not 0 <= depth <= MAX_DEPTH:
        raise DatasetError(f"the depth is 0 to {MAX_DEPTH}")
    listing = scan(roots.check(folder, "read"), depth)
    journal = Journal(listing.root)
    paths = [e.rel for e in listing.entries]
    return {"folder": str(listing.root), "depth": depth, **report(journal.progress(paths), paths, journal.decisions())}


class Recent:
    """The dataset folders this process loaded pages from, newest first, for the browser to show."""

    def __init__(self, limit: int = 20) -> None:
        self._folders: OrderedDict[str, int] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, folder: str, depth: int) -> None:
        with self._lock:
            self._folders.pop(folder, None)
            self._folders[folder] = depth
            while len(self._folders) > self._limit:
                self._folders.popitem(last=False)

    def folders(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(reversed(self._folders.items()))


RECENT = Recent()
