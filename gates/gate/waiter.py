"""Paused gates and the answers people give them.

A gate runs on ComfyUI's prompt-worker thread and blocks in `Waiter.wait`; clicks arrive on the
aiohttp thread through `choose` / `stop` / `set_mask`. Each pause gets a fresh run token, and
every answer must name both the node path and that token, so a click from an older run, another
tab or another workflow is refused instead of steering the wrong image.

A pause belongs to the tab (websocket client id) that queued it: only that tab is told its token
(`pending`). Other tabs learn that a gate waits elsewhere, and once the owner has no open socket
(or the prompt was queued without a client id) any tab may `take_over`: the pause gets a new
token and owner, so the old tab can no longer answer.

An answer gives each batch image a route (`choose_each`), or every image one route (`choose`),
with the batch's captions as the person left them when the gate shows captions. A Text Gate's
pause holds a text instead of images, and its answer is the text to pass on (`pass_text`).
A pause may have a countdown (`timeout`): when its `deadline` passes with no answer, `wait`
returns a Decision with `timed_out` set and the gate does what `on_timeout` says. `hold` (any
click in the UI) stops the countdown for good.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .captions import check_captions, check_text


class StaleRun(LookupError):
    """No gate with this node path and token is waiting (finished, superseded, or never was)."""


class OwnerConnected(StaleRun):
    """A take-over was refused: the tab that owns the pause still has an open socket."""


log = logging.getLogger(__name__)

Connected = Callable[[str], bool]
"""Whether a client id has an open websocket now (ComfyUI: PromptServer.instance.sockets)."""

REVOKED_KEPT = 256  # taken-over tokens remembered, to tell their old tab why it was refused


class GateInterrupted(Exception):
    """ComfyUI's Cancel fired while the gate waited."""


MAX_TEXT_BYTES = 256 * 1024  # a Text Gate's text, as it comes and as it is sent back


@dataclass
class Decision:
    routes: list[int] | None  # one 1-based route per batch image; None: Stop, or a timeout
    masks: dict[int | None, torch.Tensor]  # painted masks by batch index; None = every image
    timed_out: bool = False  # the countdown ran out with no answer
    captions: list[str] | None = None  # the batch's captions as the answer sent them, if it did
    text: str | None = None  # a Text Gate's answer: the text to pass on

    @property
    def route(self) -> int | None:
        """The route every image took, or None (images split between routes, Stop, timeout)."""
        if not self.routes or any(r != self.routes[0] for r in self.routes):
            return None
        return self.routes[0]


def single_route(routes: list[int] | None) -> int | None:
    """The one route of a per-image list when every image took it, else None."""
    return Decision(routes, {}).route


def _check_answer_captions(pending: Pending, captions: Any) -> list[str] | None:
    """The answer's captions checked against the pause: None when it sends none (the gate
    then keeps the batch's own); refused when the pause shows none to edit."""
    if captions is None:
        return None
    if pending.captions is None:
        raise ValueError("this gate shows no captions: answer without captions")
    return check_captions(captions, len(pending.captions))


def check_routes(routes: Any, batch: int, count: int) -> list[int]:
    """`routes` as a list of one route (1..count) per batch image, else ValueError."""
    if not isinstance(routes, list) or len(routes) != batch:
        raise ValueError(f"routes must be a list of {batch} route numbers, one per batch image, got {routes!r}"[:300])
    for r in routes:
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= count:
            raise ValueError(f"each route must be an integer from 1 to {count}, got {r!r}")
    return list(routes)


@dataclass
class Pending:
    """One paused gate. `image` is kept so previews can be rendered on request; a Text Gate's
    pause has none, and its `text` instead."""

    node: str
    token: str
    routes: int
    image: torch.Tensor | None
    labels: list[str] = field(default_factory=list)
    prompt_id: str | None = None
    client_id: str | None = None
    source: str = "input"
    created: float = field(default_factory=time.time)
    timeout: float = 0  # seconds the pause waits for an answer; 0 = forever
    on_timeout: str = "park"  # what the gate does then: "park", "stop" or "route K"
    deadline: float | None = None  # epoch seconds; None: no countdown, or held
    preselect: list[int] | None = None  # the routes recorded in the slot this run resumed from
    captions: list[str] | None = None  # one per batch image, shown to edit; None: the gate has none
    text: str | None = None  # a Text Gate's text, shown to edit
    sizes: list[tuple[int, int]] | None = None  # each image's own (height, width) in a padded page
    _event: threading.Event = field(default_factory=threading.Event, repr=False)
    _decision: Decision | None = field(default=None, repr=False)
    _masks: dict[int | None, torch.Tensor] = field(default_factory=dict, repr=False)

    def images(self) -> torch.Tensor:
        """The paused batch; ValueError for a Text Gate's pause, which has none."""
        if self.image is None:
            raise ValueError(f"gate {self.node!r} is a Text Gate: its pause has no images")
        return self.image

    @property
    def batch(self) -> int:
        return int(self.images().shape[0])

    def shown(self, index: int) -> torch.Tensor:
        """Batch image `index` as a person sees it: a dataset page's image at its own size, not
        the page's padding."""
        image = self.images()[index]
        if self.sizes is None:
            return image
        h, w = self.sizes[index]
        return image[:h, :w]

    def shown_size(self, index: int | None) -> tuple[int, int]:
        """(height, width) of what `shown(index)` gives; the batch's for None (every image)."""
        if index is not None and self.sizes is not None:
            return self.sizes[index]
        _, h, w, _ = self.images().shape
        return int(h), int(w)

    def public(self) -> dict[str, Any]:
        """What the owner tab is told: everything it needs to draw the pause, never tensor data."""
        view: dict[str, Any] = {
            "node": self.node,
            "token": self.token,
            "kind": "text" if self.image is None else "image",
            "prompt_id": self.prompt_id,
            "source": self.source,
            "created": self.created,
            "timeout": self.timeout,
            "deadline": self.deadline,
            "on_timeout": self.on_timeout,
        }
        if self.image is None:
            view["text"] = self.text
            return view
        b, h, w, _ = self.image.shape
        return view | {
            "routes": self.routes,
            "labels": self.labels,
            "batch": int(b),
            "height": int(h),
            "width": int(w),
            "painted": sorted(-1 if k is None else k for k in self._masks),
            "preselect": self.preselect,
            "captions": self.captions,
            "sizes": None if self.sizes is None else [[h, w] for h, w in self.sizes],
        }

    def orphaned(self, connected: Connected) -> bool:
        """No tab owns it any more: queued without a client id, or the owner's socket is gone."""
        return self.client_id is None or not connected(self.client_id)

    def elsewhere(self, connected: Connected) -> dict[str, Any]:
        """What any other tab is told: the pause without its token, and whether it may be taken."""
        view = self.public()
        del view["token"]
        view.update(owner="other", orphaned=self.orphaned(connected))
        return view


def _same_token(live: str, given: str) -> bool:
    """Constant-time, on bytes: compare_digest refuses a str that is not ASCII (a TypeError,
    where a wrong token is just a wrong token)."""
    return secrets.compare_digest(live.encode(), given.encode("utf-8", "surrogatepass"))


class Waiter:
    """Registry of paused gates, shared by the node (one thread) and the routes (another)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # epoch seconds: deadlines are shown to the page as they are
        self._lock = threading.Lock()
        self._waiting: dict[str, Pending] = {}
        self._revoked: dict[str, str] = {}  # taken-over token -> node path (oldest first)
        self._on_arm: list[Callable[[Pending], None]] = []

    def on_arm(self, listener: Callable[[Pending], None]) -> None:
        """Call `listener(pending)` on the gate's thread as each pause is armed, before the page
        hears of it (the routes start rendering its preview then). It must not block; what it
        raises is logged and the pause goes on."""
        self._on_arm.append(listener)

    def arm(self, node: str, image: torch.Tensor | None, routes: int, **details: Any) -> Pending:
        """Register a pause under a new token (`image` None: a Text Gate's, with `text`). A
        leftover pause of the same node is superseded. With `timeout` > 0 the countdown starts now."""
        pending = Pending(node=node, token=secrets.token_urlsafe(12), routes=routes, image=image, **details)
        if pending.timeout and pending.timeout > 0:
            pending.deadline = self.clock() + pending.timeout
        with self._lock:
            old = self._waiting.get(node)
            self._waiting[node] = pending
        if old is not None:
            old._event.set()
        for listener in self._on_arm:
            try:
                listener(pending)
            except Exception:
                log.exception("Dataset Gates: a pause listener failed; the gate waits all the same")
        return pending

    def wait(self, pending: Pending, interrupted: Callable[[], bool], poll_s: float = 0.05) -> Decision:
        """Block until an answer or the deadline; wake at once on an answer, and check
        `interrupted` and the deadline every `poll_s`."""
        try:
            while not pending._event.wait(poll_s):
                if interrupted():
                    raise GateInterrupted(f"gate {pending.node} was cancelled")
                self._expire(pending)
            if pending._decision is None:
                raise GateInterrupted(f"gate {pending.node} was superseded by a newer run")
            return pending._decision
        finally:
            with self._lock:
                if self._waiting.get(pending.node) is pending:
                    del self._waiting[pending.node]

    def _expire(self, pending: Pending) -> None:
        """Answer a pause whose deadline has passed with a timed-out Decision; a click that
        comes later finds it answered."""
        with self._lock:
            if pending._event.is_set() or pending.deadline is None or self.clock() < pending.deadline:
                return
            pending._decision = Decision(routes=None, masks=dict(pending._masks), timed_out=True)
            pending._event.set()

    def _check(self, pending: Pending | None, node: Any, token: Any) -> Pending:
        """`pending` if `token` is its live token; else StaleRun saying why. Call under the lock."""
        if pending is not None and isinstance(token, str) and _same_token(pending.token, token):
            if not pending._event.is_set():
                return pending
            if pending._decision is not None and pending._decision.timed_out:
                raise StaleRun(f"gate {node!r} timed out before this answer came")
        if isinstance(token, str) and self._revoked.get(token) == node:
            raise StaleRun(
                f"gate {node!r} was taken over by another tab: this pause belongs to "
                f"that tab now and can no longer be answered here"
            )
        raise StaleRun(
            f"no gate {node!r} is waiting with that token: the pause belongs to "
            f"another tab, or it was already answered or superseded by a newer run"
        )

    def _find(self, node: Any, token: Any) -> Pending:
        with self._lock:
            return self._check(self._waiting.get(node) if isinstance(node, str) else None, node, token)

    def get(self, node: Any, token: Any) -> Pending:
        return self._find(node, token)

    def choose(self, node: Any, token: Any, route: Any, captions: Any = None) -> Pending:
        """Every batch image goes down `route`; `captions`, if sent, as the person left them."""
        pending = self._find(node, token)
        if isinstance(route, bool) or not isinstance(route, int) or not 1 <= route <= pending.routes:
            raise ValueError(f"route must be an integer from 1 to {pending.routes}, got {route!r}")
        routes = [route] * pending.batch
        return self._answer(pending, token, routes, captions=_check_answer_captions(pending, captions))

    def choose_each(self, node: Any, token: Any, routes: Any, captions: Any = None) -> Pending:
        """Batch image i goes down `routes[i]`; one route per image, each from 1 to the gate's
        route count. `captions` as for `choose`."""
        pending = self._find(node, token)
        checked = check_routes(routes, pending.batch, pending.routes)
        return self._answer(pending, token, checked, captions=_check_answer_captions(pending, captions))

    def pass_text(self, node: Any, token: Any, text: Any) -> Pending:
        """A Text Gate's answer: pass `text` on (the shown text, edited or not)."""
        pending = self._find(node, token)
        if pending.image is not None:
            raise ValueError(f"gate {pending.node!r} is an Image Gate: answer it with a route")
        return self._answer(pending, token, [1], text=check_text(text, "text", MAX_TEXT_BYTES))

    def stop(self, node: Any, token: Any) -> Pending:
        return self._answer(self._find(node, token), token, None)

    def _answer(
        self,
        pending: Pending,
        token: str,
        routes: list[int] | None,
        captions: list[str] | None = None,
        text: str | None = None,
    ) -> Pending:
        self._expire(pending)  # an answer after the deadline is too late, even if unnoticed yet
        with self._lock:
            timed_out = pending._decision is not None and pending._decision.timed_out
            if pending._event.is_set() and not timed_out:  # two clicks racing: the first counts
                raise StaleRun(f"gate {pending.node} was already answered")
            self._check(pending, pending.node, token)  # a take-over or the deadline may have raced
            pending._decision = Decision(routes=routes, masks=dict(pending._masks), captions=captions, text=text)
            pending._event.set()
        return pending

    def hold(self, node: Any, token: Any) -> Pending:
        """Stop the countdown: the pause then waits for an answer however long it takes.
        Refused (StaleRun) once the deadline has passed, like any late answer."""
        pending = self._find(node, token)
        self._expire(pending)
        with self._lock:
            self._check(pending, node, token)
            pending.deadline = None
        return pending

    def set_mask(self, node: Any, token: Any, mask: torch.Tensor | None, index: int | None = None) -> Pending:
        """Attach a painted mask [H,W] for one batch image (or all, index None); None clears.

        The countdown goes on: the page sends the masks kept from the last run again at every
        pause by itself, which says nothing about a person being there (a click sends `hold`).
        """
        pending = self._find(node, token)
        self._expire(pending)
        batch = pending.batch  # a Text Gate's pause has nothing to mask
        if index is not None and not 0 <= index < batch:
            raise ValueError(f"mask index must be from 0 to {batch - 1}, got {index}")
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

    def pending(
        self, client_id: str | None = None, connected: Connected = lambda _client: True
    ) -> list[dict[str, Any]]:
        """Gates waiting now, as tab `client_id` may see them (after a reload, or to notice a
        pause elsewhere): its own with their tokens, every other one without a token, with
        `owner: "other"` and `orphaned`. Without a client id nobody is the owner, so no token
        is handed out at all."""
        return [p.public() if client_id and p.client_id == client_id else p.elsewhere(connected) for p in self._live()]

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
                raise OwnerConnected(
                    f"gate {node!r} belongs to another tab and that tab is still "
                    f"open: answer it there, or close it and take over"
                )
            self._revoked[pending.token] = pending.node
            while len(self._revoked) > REVOKED_KEPT:
                del self._revoked[next(iter(self._revoked))]
            pending.token = secrets.token_urlsafe(12)
            pending.client_id = client_id
        return pending


WAITER = Waiter()
"""The process-wide registry: the nodes and the HTTP routes must share one."""
