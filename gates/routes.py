"""HTTP routes for the gate and the bus, on any aiohttp RouteTableDef.

ComfyUI mounts them on PromptServer.instance.routes (and mirrors them under /api); the slot
browser mounts them on its own app. Every input is validated here: ids by the slot id rule,
numbers by range, bodies by size, so a bad request gets a 4xx with a message and never a 500.

In ComfyUI these handlers run on ComfyUI's own event loop, so none of them touches the disk or
renders on it: store work goes to a small thread pool, renders and decodes to a separate,
bounded one (a flood of previews gets 503, and a listing never waits behind a render).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from . import images
from .errors import SlotCorrupt, SlotNotFound, SlotTooLarge, SlotWriteError
from .parking import NotParked, resume_prompt
from .policy import Policy
from .slot_ids import parse_ref, validate_id
from .slots import SlotInfo, SlotStore
from .waiter import Connected, Pending, StaleRun, Waiter, single_route

PREFIX = "/datasete_gate"
MAX_JSON_BYTES = 64 * 1024
MAX_MASK_BYTES = 32 * 1024 * 1024
STORE_THREADS = 4
# Each render already runs its heavy steps on all of torch's threads: a second render thread
# only helps small renders, and on two cores it starves the event loop (/bus/list p95 during
# four 4096x4096 renders: 20-21 ms with two render threads, 10-13 ms with one).
RENDER_THREADS = 1 if (os.cpu_count() or 1) <= 2 else 2
MAX_WAITING_RENDERS = 8  # beyond this many renders queued or running, answer 503
DOWNLOAD_CHUNK = 1 << 20
# Rendered pause previews kept, by (node, token, index, side), oldest out first: a budget in
# bytes, so a 64-image grid's thumbnails (~40 KB each) and a few full previews all fit.
PREVIEW_CACHE_BYTES = 48 << 20
PREVIEW_SIDES = (64, 1024)  # the long side a pause preview may ask for (grid thumbnails: 160)
GRID_SIDE = 160  # the long side of a batch grid's thumbnails: web/gate_grid.js THUMB_SIDE
RENDER_AHEAD = 4  # a batch's first grid thumbnails rendered as it pauses (under MAX_WAITING_RENDERS)
PreviewKey = tuple[str, str, int, int]  # node, token, batch index, long side

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QueuePrompt = Callable[[dict[str, Any], "str | None"], Awaitable[str]]
"""Queue an API prompt as POST /prompt would, for this client id; returns the prompt id."""
R = TypeVar("R")
RESUME_NEEDS_COMFY = "Resume needs ComfyUI: open this bus in ComfyUI's sidebar"


class PromptRejected(ValueError):
    """ComfyUI's validation refused a prompt; `node_errors` as POST /prompt reports them."""

    def __init__(self, message: str, node_errors: Any = None):
        super().__init__(message)
        self.node_errors = node_errors or {}


# Exceptions a request can cause, and what the client is told.
_STATUS: list[tuple[type[BaseException], int]] = [
    (StaleRun, 409),
    (FileExistsError, 409),
    (NotParked, 409),
    (SlotNotFound, 404),
    (SlotCorrupt, 422),
    (SlotTooLarge, 413),
    (SlotWriteError, 507),
    (ValueError, 400),
    (HttpProcessingError, 400),  # a malformed multipart body (bad or oversized part headers)
]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _rendered(future: Future[Any]) -> bool:
    """Done with a result (a failed render's callback may not have dropped it yet)."""
    return future.done() and not future.cancelled() and future.exception() is None


def _guard(handler: Handler) -> Handler:
    """Turn the documented failures into JSON errors with the right status."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            # aiohttp keeps a keep-alive connection's last response, this exception: without
            # the handler's frames it holds no pause (a whole image batch) for 75 s.
            raise exc.with_traceback(None) from None
        except tuple(exc for exc, _ in _STATUS) as exc:
            status = next(code for kind, code in _STATUS if isinstance(exc, kind))
            return _error(status, str(exc))

    return wrapped


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BYTES, actual_size=request.content_length)
    raw = bytearray()
    async for chunk in request.content.iter_any():  # the whole body, however it was split
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BYTES, actual_size=len(raw))
    try:
        body = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("request body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    return body


def _int_param(value: Any, name: str, default: int | None = None) -> int | None:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _ref(request: web.Request) -> str:
    """A slot id or 'id@-N' from the path, validated before it goes near the filesystem."""
    ref = request.match_info["id"]
    parse_ref(ref)
    return ref


def _png(data: bytes) -> web.Response:
    return web.Response(body=data, content_type="image/png", headers={"Cache-Control": "no-store"})


class GateRoutes:
    """The pack's endpoints, bound to one slot store and one waiter."""

    def __init__(
        self,
        store: SlotStore,
        waiter: Waiter,
        prefix: str = PREFIX,
        connected: Connected = lambda _client: True,
        queue_prompt: QueuePrompt | None = None,
    ):
        self.store = store
        self.waiter = waiter
        self.prefix = prefix
        self.connected = connected  # does a tab with this client id have an open socket?
        self.queue_prompt = queue_prompt  # ComfyUI's queue; None where there is none (gates serve)
        self._store_pool = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="gates-store")
        self._render_pool = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="gates-render")
        self._renders = 0
        self._renders_lock = threading.Lock()
        # Pause previews, rendering or rendered, oldest first; a byte budget over the counted ones.
        self._previews: OrderedDict[PreviewKey, Future[bytes]] = OrderedDict()
        self._preview_sizes: OrderedDict[PreviewKey, int] = OrderedDict()  # counted in _preview_bytes, in that order
        self._preview_bytes = 0
        self._previews_lock = threading.Lock()
        waiter.on_arm(self._render_ahead)

    async def _store(self, fn: Callable[..., R], *args: Any) -> R:
        """Run store work on the store pool: disk reads never block the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._store_pool, functools.partial(fn, *args))

    def _submit_render(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Queue a render or decode on the render pool; 503 when too many are already waiting."""
        with self._renders_lock:
            if self._renders >= MAX_WAITING_RENDERS:
                raise web.HTTPServiceUnavailable(
                    text=json.dumps({"error": "too many previews are being rendered; try again"}),
                    content_type="application/json",
                    headers={"Retry-After": "1"},
                )
            self._renders += 1
        future = self._render_pool.submit(fn, *args)
        future.add_done_callback(self._render_done)
        return future

    def _render_done(self, _future: Future[Any]) -> None:
        with self._renders_lock:
            self._renders -= 1

    async def _render(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a render or decode on the render pool, off the event loop."""
        return await asyncio.wrap_future(self._submit_render(fn, *args))

    def _preview(self, pending: Pending, index: int, side: int) -> Future[bytes]:
        """The preview of batch image `index` at `side`: the one already rendered or rendering
        (paging back and forth, a second look, or a render started at the pause), else a new
        render. A failed render is forgotten, so the next request tries again."""
        key = (pending.node, pending.token, index, side)
        with self._previews_lock:
            future = self._previews.get(key)
            if future is not None:
                return future
            future = self._submit_render(images.preview, pending.image[index], side)
            self._previews[key] = future
        future.add_done_callback(functools.partial(self._preview_done, key))  # may run at once
        return future

    def _preview_done(self, key: PreviewKey, future: Future[bytes]) -> None:
        with self._previews_lock:
            if self._previews.get(key) is not future:
                return
            if not _rendered(future):
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

    def _render_ahead(self, pending: Pending) -> None:
        """At the pause, on the gate's thread: start rendering what the page asks for first (a
        single image's preview, a batch's first grid thumbnails), so that it is ready or nearly
        when the page's request comes. Skipped when the render pool is already full."""
        batch = int(pending.image.shape[0])
        wanted = [(0, PREVIEW_SIDES[1])] if batch == 1 else [(i, GRID_SIDE) for i in range(min(batch, RENDER_AHEAD))]
        try:
            for index, side in wanted:
                self._preview(pending, index, side)
        except web.HTTPServiceUnavailable:
            pass  # the page's own requests render the rest

    def add_to(self, table: web.RouteTableDef) -> None:
        p = self.prefix
        for method, path, handler in [
            ("GET", "/bus/list", self.bus_list),
            ("GET", "/bus/info/{id}", self.bus_info),
            ("GET", "/bus/thumb/{id}", self.bus_thumb),
            ("GET", "/bus/image/{id}/{index}", self.bus_image),
            ("GET", "/bus/tensors/{id}", self.bus_tensors),
            ("GET", "/bus/history/{id}", self.bus_history),
            ("GET", "/bus/policy", self.bus_policy),
            ("POST", "/bus/policy", self.bus_set_policy),
            ("POST", "/bus/{id}/pin", self.bus_pin),
            ("DELETE", "/bus/{id}", self.bus_delete),
            ("POST", "/bus/{id}/rename", self.bus_rename),
            ("POST", "/resume/{id}", self.resume),
            ("POST", "/choice", self.choice),
            ("POST", "/hold", self.hold),
            ("POST", "/mask", self.mask),
            ("POST", "/cancel", self.cancel),
            ("GET", "/pending", self.pending),
            ("POST", "/takeover", self.takeover),
            ("GET", "/preview", self.preview),
        ]:
            table.route(method, p + path)(_guard(handler))

    def _slot_json(self, info: SlotInfo) -> dict[str, Any]:
        d = info.to_dict()
        d.pop("thumb")  # a server path; the page gets a URL instead
        d["thumb_url"] = f"{self.prefix}/bus/thumb/{info.ref}?v={int(info.created * 1000)}"
        return d

    async def bus_list(self, request: web.Request) -> web.Response:
        slots = await self._store(self.store.list)
        return web.json_response(
            {"bus": self.store.root.name, "ids": [s.id for s in slots], "slots": [self._slot_json(s) for s in slots]}
        )

    async def bus_info(self, request: web.Request) -> web.Response:
        return web.json_response(self._slot_json(await self._store(self.store.info, _ref(request))))

    async def bus_history(self, request: web.Request) -> web.Response:
        versions = await self._store(self.store.history, validate_id(request.match_info["id"]))
        return web.json_response({"versions": [self._slot_json(v) for v in versions]})

    async def bus_thumb(self, request: web.Request) -> web.Response:
        data = await self._render(self.store.thumbnail, _ref(request))
        return web.Response(body=data, content_type="image/png", headers={"Cache-Control": "no-cache"})

    async def bus_image(self, request: web.Request) -> web.Response:
        index = _int_param(request.match_info["index"], "index")
        return _png(await self._render(self.store.render, _ref(request), index))

    async def bus_tensors(self, request: web.Request) -> web.StreamResponse:
        """The exact slot file, verified first, then streamed from the same open file."""
        ref = _ref(request)
        opened = self.store.verified_file(ref)
        f, size = await self._render(opened.__enter__)
        try:

            def read_at(offset: int) -> bytes:
                f.seek(offset)
                return f.read(DOWNLOAD_CHUNK)

            resp = web.StreamResponse(
                headers={
                    "Content-Disposition": f'attachment; filename="{ref.replace("@", "_")}.safetensors"',
                    "Content-Type": "application/octet-stream",
                    "Cache-Control": "no-store",
                }
            )
            resp.content_length = size
            await resp.prepare(request)
            offset = 0
            while chunk := await self._store(read_at, offset):
                await resp.write(chunk)
                offset += len(chunk)
            await resp.write_eof()
            return resp
        finally:
            await self._store(opened.__exit__, None, None, None)

    async def bus_delete(self, request: web.Request) -> web.Response:
        slot_id = validate_id(request.match_info["id"])
        await self._store(self.store.delete, slot_id)
        return web.json_response({"deleted": slot_id})

    async def bus_rename(self, request: web.Request) -> web.Response:
        old = validate_id(request.match_info["id"])
        body = await _json_body(request)
        info = await self._store(
            functools.partial(
                self.store.rename, old, validate_id(body.get("to")), overwrite=body.get("overwrite") is True
            )
        )
        return web.json_response(self._slot_json(info))

    async def bus_pin(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body.get("pinned", True), bool):
            raise ValueError("pinned must be true or false")
        info = await self._store(self.store.pin, validate_id(request.match_info["id"]), body.get("pinned", True))
        return web.json_response(self._slot_json(info))

    async def resume(self, request: web.Request) -> web.Response:
        """{client_id}: queue the run parked in this slot again, its gate resuming from the
        slot (see parking.resume_prompt), so the pause comes back at once; the pause goes to
        `client_id`'s tab. 404 no slot, 409 not a parked run, 400 when ComfyUI refuses the
        prompt (with its node_errors), 501 without ComfyUI."""
        if self.queue_prompt is None:
            return _error(501, RESUME_NEEDS_COMFY)
        slot_id = validate_id(request.match_info["id"])
        body = await _json_body(request)
        client_id = body.get("client_id")
        if client_id is not None and not isinstance(client_id, str):
            raise ValueError("client_id must be a string (this tab's websocket client id)")
        info = await self._store(self.store.info, slot_id)
        prompt = resume_prompt(info.meta, slot_id)
        try:
            prompt_id = await self.queue_prompt(prompt, client_id or None)
        except PromptRejected as exc:
            return web.json_response({"error": str(exc), "node_errors": exc.node_errors}, status=400)
        return web.json_response({"prompt_id": prompt_id})

    def _policy_json(self, policy: Policy) -> dict[str, Any]:
        return {"keep": policy.keep, "quota_bytes": policy.quota_bytes, "used_bytes": self.store.usage()}

    async def bus_policy(self, request: web.Request) -> web.Response:
        return web.json_response(await self._store(lambda: self._policy_json(self.store.policy())))

    async def bus_set_policy(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        changes = {k: body[k] for k in ("keep", "quota_bytes") if k in body}
        return web.json_response(await self._store(lambda: self._policy_json(self.store.set_policy(**changes)[0])))

    async def choice(self, request: web.Request) -> web.Response:
        """{node, token, routes: [r0, r1, ...]}: one route per batch image; or {node, token,
        route: k}: every image to k. The reply has both: routes, and route (the one route
        when every image took it, else null)."""
        body = await _json_body(request)
        if "routes" in body:
            pending = self.waiter.choose_each(body.get("node"), body.get("token"), body["routes"])
            routes = list(body["routes"])
        else:
            pending = self.waiter.choose(body.get("node"), body.get("token"), body.get("route"))
            routes = [body["route"]] * int(pending.image.shape[0])
        return web.json_response({"node": pending.node, "routes": routes, "route": single_route(routes)})

    async def hold(self, request: web.Request) -> web.Response:
        """{node, token}: stop the pause's countdown; it then waits however long it takes."""
        body = await _json_body(request)
        pending = self.waiter.hold(body.get("node"), body.get("token"))
        return web.json_response({"node": pending.node, "deadline": pending.deadline})

    async def cancel(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        pending = self.waiter.stop(body.get("node"), body.get("token"))
        return web.json_response({"node": pending.node, "stopped": True})

    async def mask(self, request: web.Request) -> web.Response:
        """multipart: node, token, optional index, and `mask` (an image) or `clear`."""
        if request.content_length is not None and request.content_length > MAX_MASK_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_MASK_BYTES, actual_size=request.content_length)
        if not request.content_type.startswith("multipart/"):
            raise ValueError("mask upload must be multipart/form-data")
        fields: dict[str, bytes] = {}
        total = 0
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):  # a nested multipart/* part
                raise ValueError("mask upload fields must be plain form fields, not nested multipart")
            data = bytearray()
            while chunk := await part.read_chunk(1 << 16):  # unnamed parts count too
                total += len(chunk)
                if total > MAX_MASK_BYTES:
                    raise web.HTTPRequestEntityTooLarge(max_size=MAX_MASK_BYTES, actual_size=total)
                data += chunk
            if part.name is not None:
                fields[part.name] = bytes(data)
        node = fields.get("node", b"").decode("utf-8", "replace")
        token = fields.get("token", b"").decode("utf-8", "replace")
        index = _int_param(fields.get("index", b"").decode("ascii", "replace"), "index")
        pending = self.waiter.get(node, token)  # refuse a stale run before decoding anything
        if "clear" in fields:
            pending = self.waiter.set_mask(node, token, None)
        elif "mask" in fields:
            _, h, w, _ = pending.image.shape
            mask = await self._render(self._decode_mask, fields["mask"], int(h), int(w))
            pending = self.waiter.set_mask(node, token, mask, index)
        else:
            raise ValueError("mask upload needs a `mask` file field or a `clear` field")
        return web.json_response({"node": pending.node, "painted": pending.public()["painted"]})

    @staticmethod
    def _decode_mask(data: bytes, height: int, width: int) -> Any:
        """A painted mask kept small: uint8 at the image's size, whatever size was uploaded.

        An upload may be a few times the image (drawn on a bigger screen), never more, so a
        pause holds at most one image-sized byte plane per batch image plus a shared one.
        """
        limit = min(images.MAX_UPLOAD_PIXELS, max(4 * height * width, 1 << 20))
        return images.fit_mask(images.decode_mask_upload(data, limit), height, width)

    async def pending(self, request: web.Request) -> web.Response:
        """This tab's pauses with their tokens; other tabs' pauses without (see Waiter.pending)."""
        client_id = request.query.get("client_id") or None
        return web.json_response({"pending": self.waiter.pending(client_id, self.connected)})

    async def takeover(self, request: web.Request) -> web.Response:
        """{node, client_id}: this tab answers an orphaned pause from now on (409 while its
        owner tab is open); the reply is the pause with its new token."""
        body = await _json_body(request)
        pending = self.waiter.take_over(body.get("node"), body.get("client_id"), self.connected)
        return web.json_response(pending.public())

    async def preview(self, request: web.Request) -> web.Response:
        pending = self.waiter.get(request.query.get("node"), request.query.get("token"))
        index = _int_param(request.query.get("index"), "index", 0)
        if not 0 <= index < pending.image.shape[0]:
            raise ValueError(f"index must be from 0 to {pending.image.shape[0] - 1}, got {index}")
        side = _int_param(request.query.get("side"), "side", PREVIEW_SIDES[1])
        if not PREVIEW_SIDES[0] <= side <= PREVIEW_SIDES[1]:
            raise ValueError(f"side must be from {PREVIEW_SIDES[0]} to {PREVIEW_SIDES[1]}, got {side}")
        # shield: a request that goes away must not cancel a render other requests share
        return _png(await asyncio.shield(asyncio.wrap_future(self._preview(pending, index, side))))
