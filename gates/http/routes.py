"""HTTP routes for the gate and the bus, on any aiohttp RouteTableDef.

ComfyUI mounts them on PromptServer.instance.routes (and mirrors them under /api); the slot
browser (`gates serve`, see `app`) mounts them on its own app. `guard` turns failures into
4xx answers, `bus_routes` serves the bus, `pause_routes` the paused gates, `dataset_routes` the
datasets' progress, and `previews`
keeps renders off the event loop.
"""

from __future__ import annotations

from aiohttp import web

from ..bus import BusAdmin
from ..gate.waiter import Connected, Waiter
from .bus_routes import BusRoutes, QueuePrompt, ResumePrompt
from .dataset_routes import DatasetRoutes
from .guard import Handler, PromptRejected, guard
from .pause_routes import PauseRoutes
from .previews import PreviewCache, RenderPool

PREFIX = "/datasete_gate"

__all__ = ["PREFIX", "GateRoutes", "Handler", "PromptRejected"]


class GateRoutes:
    """The pack's endpoints, bound to one bus and one waiter."""

    def __init__(
        self,
        store: BusAdmin,
        waiter: Waiter,
        prefix: str = PREFIX,
        connected: Connected = lambda _client: True,
        queue_prompt: QueuePrompt | None = None,
        resume_prompt: ResumePrompt | None = None,
    ):
        self.prefix = prefix
        renders = RenderPool()
        self.previews = PreviewCache(renders)
        self.bus = BusRoutes(store, renders, prefix, queue_prompt, resume_prompt)
        self.pause = PauseRoutes(waiter, renders, self.previews, connected)
        self.dataset = DatasetRoutes()
        waiter.on_arm(self.previews.render_ahead)

    def add_to(self, table: web.RouteTableDef) -> None:
        for method, path, handler in self.bus.routes() + self.pause.routes() + self.dataset.routes():
            table.route(method, self.prefix + path)(guard(handler))
