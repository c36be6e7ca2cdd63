"""What an Image Gate does with one run, free of ComfyUI so it can be tested directly.

Data enters as the wired image or a slot (`resolve_source`), waits for a person in the
`Waiter`, picks up a mask (`compose_mask`) and the captions as the person left them, is
published to `send_id` if asked, and leaves split by route: each route output carries the
images sent down it (`route_outputs`), the mask, latent and captions outputs the whole batch,
and `decisions` the route (and caption) of every image. ComfyUI's pieces come in through `Hooks`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .. import images
from ..bus import SlotBus, SlotMetaTooLarge, SlotNotFound
from ..bus.ids import parse_ref, validate_id
from ..dataset.page import Page
from .captions import captions_meta, check_captions, edited_flags, recorded_captions
from .pages import check_page, journal_page, page_captions, release_on_error, release_page
from .parking import PARK, STOP, answer_fingerprint, given_answer, parked_meta, parked_slot_id, timeout_action
from .split import Decisions, route_images
from .waiter import Decision, Pending, Waiter, single_route

MAX_ROUTES = 10
PAUSE_EVENT = "datasete_gate.pause"
DONE_EVENT = "datasete_gate.done"

log = logging.getLogger("dataset_gates")


@dataclass
class Hooks:
    """The host's side of a run: ComfyUI's in the adapter, plain functions in tests."""

    interrupted: Callable[[], bool]
    notify: Callable[[str, dict[str, Any], str | None], None]  # to one client id; None = every tab
    blocker: Callable[[], Any]  # a fresh ExecutionBlocker(None)
    interrupt: Callable[[], BaseException]  # what to raise on Stop / Cancel
    prompt_id: Callable[[], str | None]
    client_id: Callable[[], str | None]
    park_secret: Callable[[], bytes | None]  # seals parked runs (gate.seal); None: the host has none
    worker: Callable[[], str | None] = lambda: None  # this worker's name, kept with the runs it parks


@dataclass
class Source:
    image: torch.Tensor
    mask: torch.Tensor | None
    origin: str
    latent: dict[str, Any] | None = None
    routes: list[int] | None = None  # the per-image routes recorded in the slot, if any
    captions: list[str] | None = None  # wired, or recorded in the slot; may be one for all
    edited: list[bool] | None = None  # which of the slot's captions were edited before


def parse_labels(text: str, routes: int) -> list[str]:
    """Route labels from a comma- or newline-separated widget; blanks fall back to numbers."""
    given = [part.strip() for part in text.replace("\n", ",").split(",")] if text else []
    return [(given[i] if i < len(given) and given[i] else str(i + 1)) for i in range(routes)]


def _recorded_routes(meta: dict[str, Any], batch: int) -> list[int] | None:
    """The per-image routes a slot's meta records, if they fit its batch."""
    routes = meta.get("routes")
    if (
        isinstance(routes, list)
        and len(routes) == batch
        and all(type(r) is int and 1 <= r <= MAX_ROUTES for r in routes)
    ):
        return routes
    return None


def resolve_source(
    store: SlotBus,
    image: torch.Tensor | None,
    get_id: str,
    mask: torch.Tensor | None = None,
    latent: dict[str, Any] | None = None,
    captions: list[str] | None = None,
) -> Source | None:
    """A wired image always wins; else `get_id`'s slot (or 'id@-N'); else nothing (a no-op).

    A wired mask (latent, captions) goes with whichever image is gated, ahead of the slot's
    own. A slot also gives the per-image routes (and captions) it recorded, to pre-select. A
    missing slot is expected between sessions, so it only warns; a bad id or a damaged slot
    raises, because silently skipping those would hide lost work.
    """
    if image is not None:
        return Source(image, mask, "input", latent, captions=captions)
    get_id = (get_id or "").strip()
    if not get_id:
        return None
    try:
        data = store.read(get_id)  # a bad id or ref raises ValueError here
    except SlotNotFound:
        log.warning(
            "Image Gate: get_id %r names no slot in %s; nothing to gate, all routes blocked", get_id, store.name
        )
        return None
    batch = int(data.image.shape[0])
    recorded, edited = recorded_captions(data.meta, batch) if captions is None else (captions, None)
    return Source(
        data.image,
        mask if mask is not None else data.mask,
        f"slot:{get_id}",
        latent if latent is not None else data.latent,
        _recorded_routes(data.meta, batch),
        recorded,
        edited,
    )


def compose_mask(
    painted: dict[int | None, torch.Tensor], loaded: torch.Tensor | None, image: torch.Tensor
) -> torch.Tensor:
    """Painted at the gate > wired or loaded from the slot > zeros, always [B,H,W] (a wired or
    loaded mask of batch 1 stays [1,H,W], shared by the batch).

    A painted mask (uint8, 255 = masked) of another size is resized to the image; one
    painted for every image (key None) is the base that per-image masks override.
    """
    b, h, w = (int(n) for n in image.shape[:3])
    if painted:
        out = torch.zeros((b, h, w), dtype=torch.float32)
        if None in painted:
            out[:] = images.resize_mask(images.mask_float(painted[None])[None], h, w)[0]
        for index, mask in painted.items():
            if index is not None:
                out[index] = images.resize_mask(images.mask_float(mask)[None], h, w)[0]
        return out
    if loaded is not None:
        return images.resize_mask(loaded if loaded.ndim == 3 else loaded[None], h, w)
    return torch.zeros((b, h, w), dtype=torch.float32)


def route_outputs(routes: list[int] | None, image: Any, blocker: Callable[[], Any]) -> tuple:
    """Ten route outputs: route k carries the images whose route is k, in batch order; a
    route no image took gets a blocker of its own. `routes` None blocks them all."""
    if routes is None:
        return tuple(blocker() for _ in range(MAX_ROUTES))
    return route_images(routes, image, MAX_ROUTES, blocker)


def blocked(hooks: Hooks) -> tuple:
    """The silent no-op: every output blocked (mask, routes, decisions, latent, captions), so
    nothing downstream runs.

    The mask is blocked too (not a placeholder zeros tensor): a node fed only by the mask
    would otherwise still run, e.g. save a 1x1 black image on every empty run.
    """
    return (
        hooks.blocker(),
        *route_outputs(None, None, hooks.blocker),
        hooks.blocker(),
        hooks.blocker(),
        hooks.blocker(),
    )


def announce_done(
    hooks: Hooks, pending: Pending, routes: list[int] | None, timed_out: bool = False, parked: str | None = None
) -> None:
    """Tell the pause's owner now, which a take-over may have changed since the pause event."""
    hooks.notify(
        DONE_EVENT,
        {
            "node": pending.node,
            "token": pending.token,
            "route": single_route(routes),
            "routes": routes,
            "timed_out": timed_out,
            "parked": parked,
        },
        pending.client_id,
    )


def run_gate(
    *,
    store: SlotBus,
    waiter: Waiter,
    hooks: Hooks,
    node: str,
    routes: int,
    image: torch.Tensor | None = None,
    send_id: str = "",
    get_id: str = "",
    labels: str = "",
    mask: torch.Tensor | None = None,
    latent: dict[str, Any] | None = None,
    timeout: float = 0,
    on_timeout: str = PARK,
    prompt: dict[str, Any] | None = None,
    captions: list[str] | None = None,
    page: Page | None = None,
    answer: str = "",
) -> tuple:
    """One gate run: pause, take the person's answer, publish, and route. Returns 14 outputs:
    mask, route_1..route_10, decisions, latent, captions.

    `captions` (one per image, or one for all) are shown under the images to edit; the
    answer's captions leave with the batch (the captions output, `decisions`, the slot's
    meta). Without captions (wired or in the slot) the captions output is blocked.

    With `timeout` > 0 (seconds) an unanswered pause does what `on_timeout` says: "route K"
    as if every image was sent to K, "stop" as Stop, "park" publishes the batch (to send_id,
    else to a slot named after the run and node) with `prompt` (the API prompt) and the node
    id, and blocks every output, so the prompt ends successfully and the queue moves on.

    With a dataset `page` (from Dataset Load, for the wired image), its captions are shown when
    none are wired, and the answer is journaled per file in the dataset before anything leaves
    (`pages.journal_page`); a page that ends unanswered hands its files back, and one whose
    countdown says park is not parked: its files stay in the folder, undecided.

    `answer` (set only by Resume, for a parked batch decided in the slot browser: see
    `parking.given_answer`) is the decision itself: the gate does not pause.
    """
    with release_on_error(page if isinstance(page, Page) else None):
        if page is not None:
            if image is None:
                raise ValueError("page: wire the image of the same Dataset Load with it")
            page = check_page(page, int(image.shape[0]))
            if captions is None:
                captions = page_captions(page)
        if not 1 <= routes <= MAX_ROUTES:
            raise ValueError(f"routes must be from 1 to {MAX_ROUTES}, got {routes}")
        if timeout < 0:
            raise ValueError(f"timeout must be 0 (wait forever) or more seconds, got {timeout}")
        if timeout > 0:  # fail before pausing; without a countdown on_timeout never applies
            timeout_action(on_timeout, routes)
        send_id = (send_id or "").strip()
        if send_id:
            validate_id(send_id)  # fail before the person spends time choosing
        source = resolve_source(store, image, get_id, mask, latent, captions)
        if source is None:
            return blocked(hooks)
        batch = int(source.image.shape[0])
        shown = None if source.captions is None else check_captions(source.captions, batch, shared_ok=True)
        names = parse_labels(labels, routes)
        prompt_id = hooks.prompt_id()
        if answer:  # decided already (a parked batch decided in the slot browser): no pause
            decision = given_answer(answer, batch, routes)
            wanted = answer_fingerprint(answer)
            if wanted is not None and get_id and store.fingerprint(parse_ref(get_id.strip())[0]) != wanted:
                raise ValueError(
                    f"slot {get_id.strip()!r} changed since its batch was decided in the browser: nothing was"
                    " sent on; decide it again"
                )
        else:
            asked = _ask(
                Asked(store, waiter, hooks, node, routes, names, prompt_id, timeout, on_timeout, prompt),
                source,
                shown,
                send_id,
                page,
            )
            if isinstance(asked, tuple):  # parked: the outputs (not isinstance Decision: a second
                return asked  # copy of the pack gets the first copy's Decision from its waiter)
            decision = asked
        if decision.routes is None:
            raise hooks.interrupt()
        mask = compose_mask(decision.masks, source.mask, source.image)
        route = decision.route
        sent = decision.captions if decision.captions is not None else shown
        edited = None if shown is None or sent is None else edited_flags(shown, sent, source.edited)
        if page is not None:
            journal_page(page, decision.routes, names, sent, edited)
        if send_id:
            store.publish(
                send_id,
                source.image,
                mask,
                latent=source.latent,
                meta={
                    "node": node,
                    "prompt_id": prompt_id,
                    "routes": decision.routes,
                    "route": route,
                    "route_label": None if route is None else names[route - 1],
                    "source": source.origin,
                    **captions_meta(sent, edited),
                },
            )
        return (
            mask,
            *route_outputs(decision.routes, source.image, hooks.blocker),
            Decisions(
                tuple(decision.routes), None if sent is None else tuple(sent), None if edited is None else tuple(edited)
            ),
            source.latent if source.latent is not None else hooks.blocker(),
            list(sent) if sent is not None else hooks.blocker(),
        )


@dataclass(frozen=True)
class Asked:
    """What a pause needs of the run that asks: the gate, its routes and labels, the countdown."""

    store: SlotBus
    waiter: Waiter
    hooks: Hooks
    node: str
    routes: int
    labels: list[str]
    prompt_id: str | None
    timeout: float
    on_timeout: str
    prompt: dict[str, Any] | None


def _ask(ask: Asked, source: Source, shown: list[str] | None, send_id: str, page: Page | None) -> Decision | tuple:
    """Pause and wait for the person: their Decision, or the run's outputs when the countdown
    parked it (every output blocked); raises the host's interrupt on Stop, Cancel, or a
    countdown that stops."""
    hooks, node, timeout = ask.hooks, ask.node, ask.timeout
    action, timeout_route = timeout_action(ask.on_timeout, ask.routes) if timeout > 0 else (None, None)
    preselect = source.routes if source.routes and max(source.routes) <= ask.routes else None
    pending = ask.waiter.arm(
        node,
        source.image,
        ask.routes,
        labels=ask.labels,
        prompt_id=ask.prompt_id,
        client_id=hooks.client_id(),
        source=source.origin,
        preselect=preselect,
        timeout=timeout,
        on_timeout=ask.on_timeout,
        captions=shown,
        sizes=None if page is None else [(item.height, item.width) for item in page.items],
    )
    decision = wait_for_answer(ask.waiter, hooks, pending)
    if decision.timed_out and action == PARK and page is not None:
        # parking keeps what would be costly to make again; a page is its folder's files,
        # so they stay there, undecided, for the next run (a resumed run could not know them)
        announce_done(hooks, pending, None, timed_out=True)
        release_page(page)
        log.info("Image Gate %s: no answer in %ss; the dataset page stays undecided for the next run", node, timeout)
        return blocked(hooks)
    if decision.timed_out and action == PARK:
        try:
            parked = park(
                ask.store,
                source,
                compose_mask(decision.masks, source.mask, source.image),
                send_id or parked_slot_id(pending.prompt_id, node),
                node,
                pending.prompt_id,
                ask.prompt,
                captions_meta(shown, source.edited) | _worker_meta(hooks),
                hooks.park_secret(),
            )
        except Exception:
            announce_done(hooks, pending, None, timed_out=True)
            raise
        announce_done(hooks, pending, None, timed_out=True, parked=parked)
        return blocked(hooks)
    if decision.timed_out and action == STOP:
        announce_done(hooks, pending, None, timed_out=True)
        log.info("Image Gate %s: no answer in %ss; stopped the run as on_timeout says", node, timeout)
        raise hooks.interrupt()
    if decision.timed_out and timeout_route is not None:
        decision = Decision([timeout_route] * int(source.image.shape[0]), decision.masks, True)
    announce_done(hooks, pending, decision.routes, timed_out=decision.timed_out)
    return decision


def _worker_meta(hooks: Hooks) -> dict[str, Any]:
    """Which worker parked a run, for the slot browser of a bus that several workers share."""
    worker = hooks.worker()
    return {"worker": worker} if worker else {}


def wait_for_answer(waiter: Waiter, hooks: Hooks, pending: Pending) -> Decision:
    """Tell the pause's tab (every tab, without the token, when it was queued without one),
    then wait for the answer; Cancel, or a newer run of the node, ends the run as Stop does."""
    if pending.client_id:
        hooks.notify(PAUSE_EVENT, pending.public(), pending.client_id)
    else:  # queued without a tab: every tab hears of it, none gets the token (see take_over)
        hooks.notify(PAUSE_EVENT, pending.elsewhere(lambda _client: False), None)
    try:
        return waiter.wait(pending, hooks.interrupted)
    except Exception:
        announce_done(hooks, pending, None)
        raise hooks.interrupt() from None


def park(
    store: SlotBus,
    source: Source,
    mask: torch.Tensor,
    slot_id: str,
    node: str,
    prompt_id: str | None,
    prompt: dict[str, Any] | None,
    extra: dict[str, Any],
    secret: bytes | None,
) -> str:
    """Publish an unanswered batch (image, mask, latent, `extra` meta: its captions) with what
    resuming it needs, sealed with `secret`. A prompt too large for the slot's header is left
    out: the batch is kept, resume is refused."""
    try:
        meta = parked_meta(prompt, node, prompt_id, source.origin, slot_id, secret) | extra
        store.publish(slot_id, source.image, mask, latent=source.latent, meta=meta)
    except SlotMetaTooLarge:
        log.warning(
            "Image Gate %s: the prompt is too large to park with the batch; parking "
            "the batch alone (load it with get_id=%s)",
            node,
            slot_id,
        )
        meta = parked_meta(None, node, prompt_id, source.origin, slot_id, secret) | extra
        store.publish(slot_id, source.image, mask, latent=source.latent, meta=meta)
    log.info(
        "Image Gate %s: no answer in time; parked the batch in slot %r (resume it from the bus browser)", node, slot_id
    )
    if secret is None:
        log.warning("Image Gate %s: parked without a seal (no park secret): Resume will refuse slot %r", node, slot_id)
    return slot_id
