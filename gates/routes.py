"""HTTP routes for the gate and the bus, on any aiohttp RouteTableDef.

ComfyUI mounts them on PromptServer.instance.routes (and mirrors them under /api); the slot
browser mounts them on its own app. Every input is validated here: ids by the slot id rule,
numbers by range, bodies by size, so a bad request gets a 4xx with a message and never a 500.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from . import images
from .policy import Policy
from .slots import (SlotCorrupt, SlotInfo, SlotNotFound, SlotStore, SlotWriteError, parse_ref,
                    validate_id)
from .waiter import StaleRun, Waiter

PREFIX = "/datasete_gate"
MAX_JSON_BYTES = 64 * 1024
MAX_MASK_BYTES = 32 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Exceptions a request can cause, and what the client is told.
_STATUS: list[tuple[type[BaseException], int]] = [
    (StaleRun, 409), (FileExistsError, 409), (SlotNotFound, 404), (SlotCorrupt, 422),
    (SlotWriteError, 507), (ValueError, 400),
    (HttpProcessingError, 400),  # a malformed multipart body (bad or oversized part headers)
]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _guard(handler: Handler) -> Handler:
    """Turn the documented failures into JSON errors with the right status."""
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except tuple(exc for exc, _ in _STATUS) as exc:
            status = next(code for kind, code in _STATUS if isinstance(exc, kind))
            return _error(status, str(exc))
    return wrapped


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BYTES,
                                            actual_size=request.content_length)
    raw = await request.content.read(MAX_JSON_BYTES + 1)
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

    def __init__(self, store: SlotStore, waiter: Waiter, prefix: str = PREFIX):
        self.store = store
        self.waiter = waiter
        self.prefix = prefix

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
            ("POST", "/choice", self.choice),
            ("POST", "/mask", self.mask),
            ("POST", "/cancel", self.cancel),
            ("GET", "/pending", self.pending),
            ("GET", "/preview", self.preview),
        ]:
            table.route(method, p + path)(_guard(handler))

    def _slot_json(self, info: SlotInfo) -> dict[str, Any]:
        d = info.to_dict()
        d.pop("thumb")  # a server path; the page gets a URL instead
        d["thumb_url"] = f"{self.prefix}/bus/thumb/{info.ref}?v={int(info.created * 1000)}"
        return d

    async def bus_list(self, request: web.Request) -> web.Response:
        slots = self.store.list()
        return web.json_response({"bus": str(self.store.root), "ids": [s.id for s in slots],
                                  "slots": [self._slot_json(s) for s in slots]})

    async def bus_info(self, request: web.Request) -> web.Response:
        return web.json_response(self._slot_json(self.store.info(_ref(request))))

    async def bus_history(self, request: web.Request) -> web.Response:
        versions = self.store.history(validate_id(request.match_info["id"]))
        return web.json_response({"versions": [self._slot_json(v) for v in versions]})

    async def bus_thumb(self, request: web.Request) -> web.StreamResponse:
        info = self.store.info(_ref(request))
        if info.thumb is None:
            raise SlotNotFound(f"slot {info.id!r} has no thumbnail")
        return web.FileResponse(info.thumb, headers={"Cache-Control": "no-cache"})

    async def bus_image(self, request: web.Request) -> web.Response:
        index = _int_param(request.match_info["index"], "index")
        return _png(images.preview(self.store.read_image(_ref(request), index)))

    async def bus_tensors(self, request: web.Request) -> web.StreamResponse:
        ref = _ref(request)
        path = self.store.tensor_file(ref)
        filename = ref.replace("@", "_")
        return web.FileResponse(path, headers={
            "Content-Disposition": f'attachment; filename="{filename}.safetensors"',
            "Content-Type": "application/octet-stream"})

    async def bus_delete(self, request: web.Request) -> web.Response:
        slot_id = validate_id(request.match_info["id"])
        self.store.delete(slot_id)
        return web.json_response({"deleted": slot_id})

    async def bus_rename(self, request: web.Request) -> web.Response:
        old = validate_id(request.match_info["id"])
        body = await _json_body(request)
        info = self.store.rename(old, validate_id(body.get("to")), overwrite=body.get("overwrite") is True)
        return web.json_response(self._slot_json(info))

    async def bus_pin(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body.get("pinned", True), bool):
            raise ValueError("pinned must be true or false")
        info = self.store.pin(validate_id(request.match_info["id"]), body.get("pinned", True))
        return web.json_response(self._slot_json(info))

    def _policy_json(self, policy: Policy) -> web.Response:
        return web.json_response({"keep": policy.keep, "quota_bytes": policy.quota_bytes,
                                  "used_bytes": self.store.usage()})

    async def bus_policy(self, request: web.Request) -> web.Response:
        return self._policy_json(self.store.policy())

    async def bus_set_policy(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        policy, _ = self.store.set_policy(**{k: body[k] for k in ("keep", "quota_bytes") if k in body})
        return self._policy_json(policy)

    async def choice(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        pending = self.waiter.choose(body.get("node"), body.get("token"), body.get("route"))
        return web.json_response({"node": pending.node, "route": body["route"]})

    async def cancel(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        pending = self.waiter.stop(body.get("node"), body.get("token"))
        return web.json_response({"node": pending.node, "stopped": True})

    async def mask(self, request: web.Request) -> web.Response:
        """multipart: node, token, optional index, and `mask` (an image) or `clear`."""
        if request.content_length is not None and request.content_length > MAX_MASK_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_MASK_BYTES,
                                                actual_size=request.content_length)
        if not request.content_type.startswith("multipart/"):
            raise ValueError("mask upload must be multipart/form-data")
        fields: dict[str, bytes] = {}
        total = 0
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):  # a nested multipart/* part
                raise ValueError("mask upload fields must be plain form fields, not nested multipart")
            if part.name is None:
                continue
            data = bytearray()
            while chunk := await part.read_chunk(1 << 16):
                total += len(chunk)
                if total > MAX_MASK_BYTES:
                    raise web.HTTPRequestEntityTooLarge(max_size=MAX_MASK_BYTES, actual_size=total)
                data += chunk
            fields[part.name] = bytes(data)
        node = fields.get("node", b"").decode("utf-8", "replace")
        token = fields.get("token", b"").decode("utf-8", "replace")
        index = _int_param(fields.get("index", b"").decode("ascii", "replace"), "index")
        self.waiter.get(node, token)  # refuse a stale run before decoding anything
        if "clear" in fields:
            pending = self.waiter.set_mask(node, token, None)
        elif "mask" in fields:
            pending = self.waiter.set_mask(node, token, images.decode_mask_upload(fields["mask"]), index)
        else:
            raise ValueError("mask upload needs a `mask` file field or a `clear` field")
        return web.json_response({"node": pending.node, "painted": pending.public()["painted"]})

    async def pending(self, request: web.Request) -> web.Response:
        return web.json_response({"pending": self.waiter.pending(request.query.get("client_id") or None)})

    async def preview(self, request: web.Request) -> web.Response:
        pending = self.waiter.get(request.query.get("node"), request.query.get("token"))
        index = _int_param(request.query.get("index"), "index", 0)
        if not 0 <= index < pending.image.shape[0]:
            raise ValueError(f"index must be from 0 to {pending.image.shape[0] - 1}, got {index}")
        return _png(images.preview(pending.image[index]))
