"""What every route shares: errors turned into JSON with the right status, bodies read
within a size limit, and parameters checked before they go near a bus.

Every input is validated: ids by the slot id rule, numbers by range, bodies by size, so a bad
request gets a 4xx with a message and never a 500.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, overload

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..bus import SlotCorrupt, SlotNotFound, SlotTooLarge, SlotUnavailable, SlotWriteError, json_limits
from ..bus.ids import parse_ref
from ..dataset.errors import RootRefused
from ..gate.parking import NotParked
from ..gate.waiter import StaleRun
from .workers import WorkerError

MAX_JSON_BYTES = 64 * 1024
CLIENT_GONE = 499  # nginx's "client closed request": in the access log, never sent

log = logging.getLogger("dataset_gates")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    (RootRefused, 403),
    (WorkerError, 502),
    (SlotUnavailable, 503),  # the object store is down: try again later
    (ValueError, 400),
    (HttpProcessingError, 400),  # a malformed multipart body (bad or oversized part headers)
]


def json_response(data: Any, status: int = 200) -> web.Response:
    """`data` as strict JSON (see json_limits.dumps): what the page's JSON.parse accepts."""
    return web.json_response(data, status=status, dumps=json_limits.dumps)


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


def guard(handler: Handler) -> Handler:
    """Turn the documented failures into JSON errors with the right status.

    A client that goes away mid-body or mid-download (a closed tab, a killed curl) is no
    server error: one debug line instead of aiohttp's traceback, and an answer nobody gets.
    """

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
            return error(status, str(exc))
        except ConnectionError:  # aiohttp's ClientConnectionResetError is one
            log.debug("Dataset Gates: %s %s: the client went away", request.method, request.path)
            return web.Response(status=CLIENT_GONE)

    return wrapped


async def json_body(request: web.Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object, of at most `limit` bytes (413 beyond) and json_limits.MAX_DEPTH
    levels (a 400 like any other bad body, never a RecursionError). A body over the usual
    64 KiB (an answer with captions) is parsed off the event loop."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    raw = bytearray()
    async for chunk in request.content.iter_any():  # the whole body, however it was split
        raw += chunk
        if len(raw) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
    try:
        small = len(raw) <= MAX_JSON_BYTES
        body = json_limits.loads(raw or b"{}") if small else await asyncio.to_thread(json_limits.loads, bytes(raw))
    except ValueError as exc:
        raise ValueError(f"request body must be JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    return body


@overload
def int_param(value: Any, name: str, default: int) -> int: ...
@overload
def int_param(value: Any, name: str, default: None = None) -> int | None: ...
def int_param(value: Any, name: str, default: int | None = None) -> int | None:
    """`value` as an int (`default` when absent); ValueError naming the parameter otherwise."""
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def ref_param(request: web.Request) -> str:
    """A slot id or 'id@-N' from the path, validated before it goes near the filesystem."""
    ref = request.match_info["id"]
    parse_ref(ref)
    return ref


def png_response(data: bytes) -> web.Response:
    return web.Response(body=data, content_type="image/png", headers={"Cache-Control": "no-store"})
