"""The dataset routes: the progress and kept-set buckets of the folders a Dataset Load read.

GET /dataset/recent lists the folders this server loaded pages from (newest first), each with
its report (`dataset.report`); GET /dataset/report?folder=...&depth=N reports any folder the
server may read (DATASET_GATES_ROOTS), so the standalone browser can show one too. Listing a
folder and reading its journal is disk work: it runs on this module's own threads, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from ..dataset.errors import DatasetError
from ..dataset.report import RECENT, Recent, folder_report
from ..dataset.roots import Roots
from .guard import int_param, json_response

THREADS = 2


class DatasetRoutes:
    """The dataset endpoints, reading folders within `roots` (a callable: the setting may change)."""

    def __init__(self, roots: Callable[[], Roots] = Roots.from_env, recent: Recent = RECENT) -> None:
        self.roots = roots
        self.recent = recent
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="gates-dataset")

    def routes(self) -> list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
        return [("GET", "/dataset/recent", self.recent_reports), ("GET", "/dataset/report", self.report)]

    async def _off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    async def report(self, request: web.Request) -> web.Response:
        folder = request.query.get("folder", "")
        depth = int_param(request.query.get("depth"), "depth", 0)
        return json_response(await self._off_loop(folder_report, folder, self.roots(), depth))

    async def recent_reports(self, request: web.Request) -> web.Response:
        return json_response({"datasets": await self._off_loop(self._recent)})

    def _recent(self) -> list[dict[str, Any]]:
        roots = self.roots()
        out = []
        for folder, depth in self.recent.folders():
            try:
                out.append(folder_report(folder, roots, depth))
            except DatasetError as exc:  # gone, or no longer allowed: say so in its row
                out.append({"folder": folder, "depth": depth, "error": str(exc)})
        return out
