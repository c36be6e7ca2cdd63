"""Paused gates and the answers people give them.

A gate runs on ComfyUI's prompt-worker thread and blocks in `Waiter.wait`; clicks arrive on the
aiohttp thread through `choose` / `stop` / `set_mask`. Each pause gets a fresh run token, and
every answer must name both the node path and that token, so a click from an older run, another
tab or another workflow is refused instead of steering the wrong image.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


class StaleRun(LookupError):
    """No gate with this node path and token is waiting (finished, superseded, or never was)."""


class GateInterrupted(Exception):
    """ComfyUI's Cancel fired while the gate waited."""


@dataclass
class Decision:
    route: int | None  # 1-based; None when the user pressed Stop
    masks: dict[int | None, torch.Tensor]  # painted masks by batch index; None = every image


@dataclass
class Pending:
    """One paused gate. `image` is kept so previews can be rendered on request."""
    node: str
    token: str
    routes: int
    image: torch.Tensor
    labels: list[str] = field(default_factory=list)
    prompt_id: str | None = None
    client_id: str | None = None
    source: str = "input"
    created: float = field(default_factory=time.time)
    _event: threading.Event = field(default_factory=threading.Event, repr=False)
    _decision: Decision | None = field(default=None, repr=False)
    _masks: dict[int | None, torch.Tensor] = field(default_factory=dict, repr=False)

    def public(self) -> dict[str, Any]:
        """What the page is told: everything it needs to draw the pause, never tensor data."""
        b, h, w, _ = self.image.shape
        return {"node": self.node, "token": self.token, "routes": self.routes,
                "labels": self.labels, "batch": int(b), "height": int(h), "width": int(w),
                "prompt_id": self.prompt_id, "source": self.source, "created": self.created,
                "painted": sorted(-1 if k is None else k for k in self._masks)}


class Waiter:
    """Registry of paused gates, shared by the node (one thread) and the routes (another)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, Pending] = {}

    def arm(self, node: str, image: torch.Tensor, routes: int, **details: Any) -> Pending:
        """Register a pause under a new token. A leftover pause of the same node is superseded."""
        pending = Pending(node=node, token=secrets.token_urlsafe(12), routes=routes, image=image,
                          **details)
        with self._lock:
            old = self._waiting.get(node)
            self._waiting[node] = pending
        if old is not None:
            old._event.set()
        return pending

    def wait(self, pending: Pending, interrupted: Callable[[], bool],
             poll_s: float = 0.05) -> Decision:
        """Block until an answer; wake at once on it, and check `interrupted` every `poll_s`."""
        try:
            while not pending._event.wait(poll_s):
                if interrupted():
                    raise GateInterrupted(f"gate {pending.node} was cancelled")
            if pending._decision is None:
                raise GateInterrupted(f"gate {pending.node} was superseded by a newer run")
            return pending._decision
        finally:
            with self._lock:
                if self._waiting.get(pending.node) is pending:
                    del self._waiting[pending.node]

    def _find(self, node: Any, token: Any) -> Pending:
        with self._lock:
            pending = self._waiting.get(node) if isinstance(node, str) else None
        if pending is None or not isinstance(token, str) or \
                not secrets.compare_digest(pending.token, token) or pending._event.is_set():
            raise StaleRun(f"no gate {node!r} is waiting with that token (an older run, "
                           f"another tab, or already answered)")
        return pending

    def get(self, node: Any, token: Any) -> Pending:
        return self._find(node, token)

    def choose(self, node: Any, token: Any, route: Any) -> Pending:
        pending = self._find(node, token)
        if isinstance(route, bool) or not isinstance(route, int) or not 1 <= route <= pending.routes:
            raise ValueError(f"route must be an integer from 1 to {pending.routes}, got {route!r}")
        return self._answer(pending, route)

    def stop(self, node: Any, token: Any) -> Pending:
        return self._answer(self._find(node, token), None)

    def _answer(self, pending: Pending, route: int | None) -> Pending:
        with self._lock:
            if pending._event.is_set():  # two clicks racing: the first one counts
                raise StaleRun(f"gate {pending.node} was already answered")
            pending._decision = Decision(route=route, masks=dict(pending._masks))
            pending._event.set()
        return pending

    def set_mask(self, node: Any, token: Any, mask: torch.Tensor | None,
                 index: int | None = None) -> Pending:
        """Attach a painted mask [H,W] for one batch image (or all, index None); None clears."""
        pending = self._find(node, token)
        if index is not None and not 0 <= index < pending.image.shape[0]:
            raise ValueError(f"mask index must be from 0 to {pending.image.shape[0] - 1}, got {index}")
        with self._lock:
            if mask is None:
                pending._masks.clear()
            else:
                pending._masks[index] = mask
        return pending

    def pending(self, client_id: str | None = None) -> list[dict[str, Any]]:
        """Gates waiting now, for a tab that reloaded mid-pause (optionally only its own)."""
        with self._lock:
            items = list(self._waiting.values())
        return [p.public() for p in items
                if not p._event.is_set() and (client_id is None or p.client_id in (None, client_id))]


WAITER = Waiter()
"""The process-wide registry: the nodes and the HTTP routes must share one."""
