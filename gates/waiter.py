"""Paused gates and the answers people give them.

A gate runs on ComfyUI's prompt-worker thread and blocks in `Waiter.wait`; clicks arrive on the
aiohttp thread through `choose` / `stop` / `set_mask`. Each pause gets a fresh run token, and
every answer must name both the node path and that token, so a click from an older run, another
tab or another workflow is refused instead of steering the wrong image.

A pause belongs to the tab (websocket client id) that queued it: only that tab is told its token
(`pending`). Other tabs learn that a gate waits elsewhere, and once the owner has no open socket
(or the prompt was queued without a client id) any tab may `take_over`: the pause gets a new
token and owner, so the old tab can no longer answer.
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


class OwnerConnected(StaleRun):
    """A take-over was refused: the tab that owns the pause still has an open socket."""


Connected = Callable[[str], bool]
"""Whether a client id has an open websocket now (ComfyUI: PromptServer.instance.sockets)."""

REVOKED_KEPT = 256  # taken-over tokens remembered, to tell their old tab why it was refused


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
        """What the owner tab is told: everything it needs to draw the pause, never tensor data."""
        b, h, w, _ = self.image.shape
        return {"node": self.node, "token": self.token, "routes": self.routes,
                "labels": self.labels, "batch": int(b), "height": int(h), "width": int(w),
                "prompt_id": self.prompt_id, "source": self.source, "created": self.created,
                "painted": sorted(-1 if k is None else k for k in self._masks)}

    def orphaned(self, connected: Connected) -> bool:
        """No tab owns it any more: queued without a client id, or the owner's socket is gone."""
        return self.client_id is None or not connected(self.client_id)

    def elsewhere(self, connected: Connected) -> dict[str, Any]:
        """What any other tab is told: the pause without its token, and whether it may be taken."""
        view = self.public()
        del view["token"]
        view.update(owner="other", orphaned=self.orphaned(connected))
        return view


class Waiter:
    """Registry of paused gates, shared by the node (one thread) and the routes (another)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, Pending] = {}
        self._revoked: dict[str, str] = {}  # taken-over token -> node path (oldest first)

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

    def _check(self, pending: Pending | None, node: Any, token: Any) -> Pending:
        """`pending` if `token` is its live token; else StaleRun saying why. Call under the lock."""
        if pending is not None and isinstance(token, str) and \
                secrets.compare_digest(pending.token, token) and not pending._event.is_set():
            return pending
        if isinstance(token, str) and self._revoked.get(token) == node:
            raise StaleRun(f"gate {node!r} was taken over by another tab: this pause belongs to "
                           f"that tab now and can no longer be answered here")
        raise StaleRun(f"no gate {node!r} is waiting with that token: the pause belongs to "
                       f"another tab, or it was already answered or superseded by a newer run")

    def _find(self, node: Any, token: Any) -> Pending:
        with self._lock:
            return self._check(self._waiting.get(node) if isinstance(node, str) else None,
                               node, token)

    def get(self, node: Any, token: Any) -> Pending:
        return self._find(node, token)

    def choose(self, node: Any, token: Any, route: Any) -> Pending:
        pending = self._find(node, token)
        if isinstance(route, bool) or not isinstance(route, int) or not 1 <= route <= pending.routes:
            raise ValueError(f"route must be an integer from 1 to {pending.routes}, got {route!r}")
        return self._answer(pending, token, route)

    def stop(self, node: Any, token: Any) -> Pending:
        return self._answer(self._find(node, token), token, None)

    def _answer(self, pending: Pending, token: str, route: int | None) -> Pending:
        with self._lock:
            if pending._event.is_set():  # two clicks racing: the first one counts
                raise StaleRun(f"gate {pending.node} was already answered")
            self._check(pending, pending.node, token)  # a take-over may have raced the click
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
            self._check(pending, node, token)
            if mask is None:
                pending._masks.clear()
            else:
                pending._masks[index] = mask
        return pending

    def _live(self) -> list[Pending]:
        with self._lock:
            return [p for p in self._waiting.values() if not p._event.is_set()]

    def pending(self, client_id: str | None = None,
                connected: Connected = lambda _client: True) -> list[dict[str, Any]]:
        """Gates waiting now, as tab `client_id` may see them (after a reload, or to notice a
        pause elsewhere): its own with their tokens, every other one without a token, with
        `owner: "other"` and `orphaned`. Without a client id nobody is the owner, so no token
        is handed out at all."""
        return [p.public() if client_id and p.client_id == client_id else p.elsewhere(connected)
                for p in self._live()]

    def paused(self) -> list[dict[str, Any]]:
        """Every waiting gate with its token: for this process only (tests, tools), never a tab."""
        return [p.public() for p in self._live()]

    def take_over(self, node: Any, client_id: Any, connected: Connected) -> Pending:
        """Make tab `client_id` the owner of an orphaned pause, under a new token (the old one
        is dead). The owner itself gets its pause back unchanged; any other tab is refused
        with OwnerConnected while the owner still has an open socket."""
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("client_id (this tab's websocket client id) is required")
        with self._lock:
            pending = self._waiting.get(node) if isinstance(node, str) else None
            if pending is None or pending._event.is_set():
                raise StaleRun(f"no gate {node!r} is waiting (it was answered or its run ended)")
            if pending.client_id == client_id:
                return pending
            if not pending.orphaned(connected):
                raise OwnerConnected(f"gate {node!r} belongs to another tab and that tab is still "
                                     f"open: answer it there, or close it and take over")
            self._revoked[pending.token] = pending.node
            while len(self._revoked) > REVOKED_KEPT:
                del self._revoked[next(iter(self._revoked))]
            pending.token = secrets.token_urlsafe(12)
            pending.client_id = client_id
        return pending


WAITER = Waiter()
"""The process-wide registry: the nodes and the HTTP routes must share one."""
