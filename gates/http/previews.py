"""Rendering off the event loop: a bounded render pool, and the cache of pause previews.

In ComfyUI the routes run on ComfyUI's own event loop, so renders and decodes go to a
separate, bounded pool: a flood of previews gets 503, and a listing never waits behind a
render. A pause's previews are kept (by node, token, index and side) so paging back and forth
costs nothing, and the first ones start rendering as the pause is armed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from .. import images
from ..gate.waiter import Pending

# Each render already runs its heavy steps on all of torch's threads: a second render thread
# only helps small renders, and on two cores it starves the event loop (/bus/list p95 during
# four 4096x4096 renders: 20-21 ms with two render threads, 10-13 ms with one).
RENDER_THREADS = 1 if (os.cpu_count() or 1) <= 2 else 2
MAX_WAITING_RENDERS = 8  # beyond this many renders queued or running, answer 503
# Rendered pause previews kept, by (node, token, index, side), oldest out first: a budget in
# bytes, so a 64-image grid's thumbnails (~40 KB each) and a few full previews all fit.
PREVIEW_CACHE_BYTES = 48 << 20
PREVIEW_SIDES = (64, 1024)  # the long side a pause preview may ask for (grid thumbnails: 160)
GRID_SIDE = 160  # the long side of a batch grid's thumbnails: web/gate_grid.js THUMB_SIDE
RENDER_AHEAD = 4  # a batch's first grid thumbnails rendered as it pauses (under MAX_WAITING_RENDERS)
PreviewKey = tuple[str, str, int, int]  # node, token, batch index, long side
R = TypeVar("R")


def rendered(future: Future[Any]) -> bool:
    """Done with a result (a failed render's callback may not have dropped it yet)."""
    return future.done() and not future.cancelled() and future.exception() is None


class RenderPool:
    """Renders and decodes, at most MAX_WAITING_RENDERS queued or running at once."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="gates-render")
        self._waiting = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Queue a render or decode; 503 when too many are already waiting."""
        with self._lock:
            if self._waiting >= MAX_WAITING_RENDERS:
                raise web.HTTPServiceUnavailable(
                    text=json.dumps({"error": "too many previews are being rendered; try again"}),
                    content_type="application/json",
                    headers={"Retry-After": "1"},
                )
            self._waiting += 1
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any]) -> None:
        with self._lock:
            self._waiting -= 1

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a render or decode on the pool, off the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))


class PreviewCache:
    """Pause previews, rendering or rendered, oldest first, within a byte budget."""

    def __init__(self, renders: RenderPool) -> None:
        self._renders = renders
        self._previews: OrderedDict[PreviewKey, Future[bytes]] = OrderedDict()
        self._preview_sizes: OrderedDict[PreviewKey, int] = OrderedDict()  # counted in _preview_bytes, in that order
        self._preview_bytes = 0
        self._lock = threading.Lock()

    def preview(self, pending: Pending, index: int, side: int) -> Future[bytes]:
        """The preview of batch image `index` at `side`: the one already rendered or rendering
        (paging back and forth, a second look, or a render started at the pause), else a new
        render. A failed render is forgotten, so the next request tries again."""
        key = (pending.node, pending.token, index, side)
        with self._lock:
            future = self._previews.get(key)
            if future is not None:
                return future
            future = self._renders.submit(images.preview, pending.shown(index), side)
            self._previews[key] = future
        future.add_done_callback(functools.partial(self._preview_done, key))  # may run at once
        return future

    def _preview_done(self, key: PreviewKey, future: Future[bytes]) -> None:
        with self._lock:
            if self._previews.get(key) is not future:
                return
            if not rendered(future):
                del self._previews[key]
                return
            self._preview_sizes[key] = len(future.result())
            self._preview_bytes += self._preview_sizes[key]
            # Only counted previews are evicted, oldest counted first: one that has rendered but
            # whose own callback has not run yet would be subtracted without ever being added.
            while self._preview_bytes > PREVIEW_CACHE_BYTES:
                old = next(iter(self._preview_sizes))
                if old == key:  # the newest preview always stays
                    break
                del self._previews[old]
                self._preview_bytes -= self._preview_sizes.pop(old)

    def render_ahead(self, pending: Pending) -> None:
        """At the pause, on the gate's thread: start rendering what the page asks for first (a
        single image's preview, a batch's first grid thumbnails), so that it is ready or nearly
        when the page's request comes. Skipped when the render pool is already full, and for a
        Text Gate's pause, which has no images."""
        if pending.image is None:
            return
        batch = pending.batch
        wanted = [(0, PREVIEW_SIDES[1])] if batch == 1 else [(i, GRID_SIDE) for i in range(min(batch, RENDER_AHEAD))]
        try:
            for index, side in wanted:
                self.preview(pending, index, side)
        except web.HTTPServiceUnavailable:
            pass  # the page's own requests render the rest
