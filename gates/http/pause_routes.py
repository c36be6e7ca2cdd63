"""The pause's HTTP routes: answer a paused gate, paint its mask, stop it, take it over.

Every request names the pause by node and token (the Waiter refuses a stale or foreign
one before anything is decoded); previews come from the preview cache.
"""

from __future__ import annotations

import asyncio
from typing import Any

import torch
from aiohttp import BodyPartReader, web

from .. import images
from ..gate.waiter import Connected, Pending, Waiter, single_route
from .guard import int_param, json_body, png_response
from .previews import PREVIEW_SIDES, PreviewCache, RenderPool

MAX_MASK_BYTES = 32 * 1024 * 1024
MAX_CHOICE_BYTES = 2 * 1024 * 1024  # an answer with a batch's captions, or a Text Gate's text
MAX_FIELD_BYTES = 8 * 1024  # node, token, index, clear: short text


class _Budget:
    """What a multipart upload may still send, in all its parts together."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    async def read(self, part: BodyPartReader, most: int) -> bytes:
        """The part's bytes; 413 past `most` for this part or past the budget for the upload.

        Read in chunks of at most `most`: the reader looks one chunk ahead for the boundary,
        so a short field reads little of the part after it (the mask, not checked yet).
        """
        data = bytearray()
        while chunk := await part.read_chunk(min(most, 1 << 16)):
            self.used += len(chunk)
            data += chunk
            if self.used > self.limit or len(data) > most:
                raise web.HTTPRequestEntityTooLarge(max_size=min(most, self.limit), actual_size=self.used)
        return bytes(data)


class PauseRoutes:
    """The /choice, /hold, /mask, /cancel, /pending, /takeover and /preview endpoints."""

    def __init__(self, waiter: Waiter, renders: RenderPool, previews: PreviewCache, connected: Connected):
        self.waiter = waiter
        self.connected = connected  # does a tab with this client id have an open socket?
        self._renders = renders
        self._previews = previews

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/choice", self.choice),
            ("POST", "/hold", self.hold),
            ("POST", "/mask", self.mask),
            ("POST", "/cancel", self.cancel),
            ("GET", "/pending", self.pending),
            ("POST", "/takeover", self.takeover),
            ("GET", "/preview", self.preview),
        ]

    async def choice(self, request: web.Request) -> web.Response:
        """{node, token, routes: [r0, r1, ...]}: one route per batch image; or {node, token,
        route: k}: every image to k; either with `captions`, one per image, when the gate shows
        captions. The reply has both: routes, and route (the one route when every image took
        it, else null). A Text Gate's answer is {node, token, text}: the text to pass on."""
        body = await json_body(request, MAX_CHOICE_BYTES)
        node, token, captions = body.get("node"), body.get("token"), body.get("captions")
        if "text" in body:
            pending = self.waiter.pass_text(node, token, body["text"])
            return web.json_response({"node": pending.node, "passed": True})
        if "routes" in body:
            pending = self.waiter.choose_each(node, token, body["routes"], captions)
            routes = list(body["routes"])
        else:
            pending = self.waiter.choose(node, token, body.get("route"), captions)
            routes = [body["route"]] * pending.batch
        return web.json_response({"node": pending.node, "routes": routes, "route": single_route(routes)})

    async def hold(self, request: web.Request) -> web.Response:
        """{node, token}: stop the pause's countdown; it then waits however long it takes."""
        body = await json_body(request)
        pending = self.waiter.hold(body.get("node"), body.get("token"))
        return web.json_response({"node": pending.node, "deadline": pending.deadline})

    async def cancel(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        pending = self.waiter.stop(body.get("node"), body.get("token"))
        return web.json_response({"node": pending.node, "stopped": True})

    async def mask(self, request: web.Request) -> web.Response:
        """multipart: node, token, optional index, then `mask` (an image) or `clear`.

        node and token must come before the mask (the page's client sends them first): the
        pause is looked up when the mask part begins, so a stale or foreign token is refused
        (409) before a byte of the image is read, and wrong-token uploads cannot make the
        server hold their images.
        """
        if request.content_length is not None and request.content_length > MAX_MASK_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_MASK_BYTES, actual_size=request.content_length)
        if not request.content_type.startswith("multipart/"):
            raise ValueError("mask upload must be multipart/form-data")
        fields: dict[str, bytes] = {}
        budget = _Budget(MAX_MASK_BYTES)
        reader = await request.multipart()
        async for part in reader:  # type: ignore[misc]  # aiohttp types __aiter__ on its base class
            if not isinstance(part, BodyPartReader):  # a nested multipart/* part
                raise ValueError("mask upload fields must be plain form fields, not nested multipart")
            if part.name == "mask":
                self._pause_of(fields, before_mask=True)  # refuse a stale run before reading it
            data = await budget.read(part, MAX_MASK_BYTES if part.name == "mask" else MAX_FIELD_BYTES)
            if part.name is not None:  # unnamed parts count against the budget too
                fields[part.name] = data
        node, token, pending = self._pause_of(fields)
        index = int_param(fields.get("index", b"").decode("ascii", "replace"), "index")
        if "clear" in fields:
            pending = self.waiter.set_mask(node, token, None)
        elif "mask" in fields:
            _, h, w, _ = pending.images().shape
            own_h, own_w = pending.shown_size(index)  # painted on what was shown: a page's image at its size
            mask = await self._renders.run(self._decode_mask, fields["mask"], own_h, own_w)
            if (own_h, own_w) != (int(h), int(w)):  # back into the page's padding, top-left
                mask = torch.nn.functional.pad(mask, (0, int(w) - own_w, 0, int(h) - own_h))
            pending = self.waiter.set_mask(node, token, mask, index)
        else:
            raise ValueError("mask upload needs a `mask` file field or a `clear` field")
        return web.json_response({"node": pending.node, "painted": pending.public()["painted"]})

    def _pause_of(self, fields: dict[str, bytes], before_mask: bool = False) -> tuple[str, str, Pending]:
        """(node, token, the pause) from the form's fields; StaleRun for a wrong token."""
        if before_mask and not {"node", "token"} <= fields.keys():
            raise ValueError("mask upload: the node and token fields must come before the mask")
        node = fields.get("node", b"").decode("utf-8", "replace")
        token = fields.get("token", b"").decode("utf-8", "replace")
        return node, token, self.waiter.get(node, token)

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
        body = await json_body(request)
        pending = self.waiter.take_over(body.get("node"), body.get("client_id"), self.connected)
        return web.json_response(pending.public())

    async def preview(self, request: web.Request) -> web.Response:
        pending = self.waiter.get(request.query.get("node"), request.query.get("token"))
        index = int_param(request.query.get("index"), "index", 0)
        if not 0 <= index < pending.batch:  # a Text Gate's pause has no images: 400
            raise ValueError(f"index must be from 0 to {pending.batch - 1}, got {index}")
        side = int_param(request.query.get("side"), "side", PREVIEW_SIDES[1])
        if not PREVIEW_SIDES[0] <= side <= PREVIEW_SIDES[1]:
            raise ValueError(f"side must be from {PREVIEW_SIDES[0]} to {PREVIEW_SIDES[1]}, got {side}")
        # shield: a request that goes away must not cancel a render other requests share
        return png_response(await asyncio.shield(asyncio.wrap_future(self._previews.preview(pending, index, side))))
