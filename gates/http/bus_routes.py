"""The bus's HTTP routes: list, inspect, download, rename, pin, delete, policy, resume.

What the slot browser (sidebar or `gates serve`) and the slot pickers ask of a bus. Bus work
runs on a small thread pool and renders on the render pool, never on the event loop (in
ComfyUI, ComfyUI's own).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from ..bus import BusAdmin, SlotInfo
from ..bus.ids import validate_id
from ..bus.policy import Policy
from ..gate.parking import node_summary
from ..gate.run import MAX_ROUTES, parse_labels
from ..gate.seal import ParkRefused
from ..gate.waiter import StaleRun, check_routes
from .guard import PromptRejected, error, int_param, json_body, json_response, png_response, ref_param
from .previews import RenderPool
from .workers import allowed, forward_resume, workers

STORE_THREADS = 4
DOWNLOAD_CHUNK = 1 << 20
RESUME_NEEDS_COMFY = "Resume needs ComfyUI: open this bus in ComfyUI's sidebar"
R = TypeVar("R")

QueuePrompt = Callable[[dict[str, Any], "str | None"], Awaitable[str]]
"""Queue an API prompt as POST /prompt would, for this client id; returns the prompt id."""
ResumePrompt = Callable[[dict[str, Any], str, "dict[str, Any] | None"], dict[str, Any]]
"""The API prompt that resumes the run parked in a slot, from its meta and id, and the answer
decided for its batch ({routes, fingerprint}; None: the gate pauses again): NotParked, or
ParkRefused for a run this ComfyUI did not seal (gate.seal)."""


class BusRoutes:
    """The /bus/... and /resume/... endpoints on one bus."""

    def __init__(
        self,
        bus: BusAdmin,
        renders: RenderPool,
        prefix: str,
        queue_prompt: QueuePrompt | None = None,
        resume_prompt: ResumePrompt | None = None,
    ):
        self.bus = bus
        self.prefix = prefix
        self.queue_prompt = queue_prompt  # ComfyUI's queue; None where there is none (gates serve)
        self.resume_prompt = resume_prompt
        self._renders = renders
        self._pool = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="gates-store")

    async def _store(self, fn: Callable[..., R], *args: Any) -> R:
        """Run bus work on the bus pool: disk reads never block the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    def routes(self) -> list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
        return [
            ("GET", "/bus/list", self.bus_list),
            ("GET", "/bus/info/{id}", self.bus_info),
            ("GET", "/bus/thumb/{id}", self.bus_thumb),
            ("GET", "/bus/image/{id}/{index}", self.bus_image),
            ("GET", "/bus/mask/{id}/{index}", self.bus_mask),
            ("GET", "/bus/tensors/{id}", self.bus_tensors),
            ("GET", "/bus/verify/{id}", self.bus_verify),
            ("GET", "/bus/history/{id}", self.bus_history),
            ("GET", "/bus/policy", self.bus_policy),
            ("POST", "/bus/policy", self.bus_set_policy),
            ("POST", "/bus/{id}/pin", self.bus_pin),
            ("DELETE", "/bus/{id}", self.bus_delete),
            ("POST", "/bus/{id}/rename", self.bus_rename),
            ("GET", "/resume/{id}", self.resume_plan),
            ("GET", "/workers", self.workers),
            ("POST", "/resume/{id}", self.resume),
        ]

    def _slot_json(self, info: SlotInfo) -> dict[str, Any]:
        d = info.to_dict()
        d.pop("has_thumb")  # the page asks thumb_url, and shows a placeholder when it fails
        d["thumb_url"] = f"{self.prefix}/bus/thumb/{info.ref}?v={int(info.created * 1000)}"
        return d

    async def bus_list(self, request: web.Request) -> web.Response:
        """The slots, tagged with the bus's listing token; 304 to a tag that still holds.

        The token is taken before the listing, so a change in between shows as a new tag on the
        next request, never as an old tag on newer rows. An unchanged bus then costs the client
        one round trip and the server one token, not a listing (the sidebar polls this).
        """
        etag = _etag(await self._store(self.bus.listing_token))
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
        slots = await self._store(self.bus.list)
        response = json_response(
            {"bus": self.bus.label, "ids": [s.id for s in slots], "slots": [self._slot_json(s) for s in slots]}
        )
        response.headers.update(headers)
        return response

    async def bus_info(self, request: web.Request) -> web.Response:
        return json_response(self._slot_json(await self._store(self.bus.info, ref_param(request))))

    async def bus_history(self, request: web.Request) -> web.Response:
        versions = await self._store(self.bus.history, validate_id(request.match_info["id"]))
        return json_response({"versions": [self._slot_json(v) for v in versions]})

    async def bus_thumb(self, request: web.Request) -> web.Response:
        data = await self._renders.run(self.bus.thumbnail, ref_param(request))
        return web.Response(body=data, content_type="image/png", headers={"Cache-Control": "no-cache"})

    async def bus_image(self, request: web.Request) -> web.Response:
        index = int_param(request.match_info["index"], "index")
        return png_response(await self._renders.run(self.bus.render, ref_param(request), index))

    async def bus_mask(self, request: web.Request) -> web.Response:
        index = int_param(request.match_info["index"], "index")
        return png_response(await self._renders.run(self.bus.render, ref_param(request), index, 1024, True))

    async def bus_verify(self, request: web.Request) -> web.Response:
        """Read the whole slot file and check its checksum, on demand: a listing reads headers
        only, so damage to the tensor bytes shows nowhere else before a load or a download."""
        ref = ref_param(request)
        await self._renders.run(self._verify, ref)
        return web.json_response({"ref": ref, "verified": True})

    def _verify(self, ref: str) -> None:
        with self.bus.verified_stream(ref):
            pass

    async def bus_tensors(self, request: web.Request) -> web.StreamResponse:
        """The exact slot file, verified first, then streamed from what was verified."""
        ref = ref_param(request)
        opened = self.bus.verified_stream(ref)
        stream = await self._renders.run(opened.__enter__)
        try:
            chunks = stream.chunks(DOWNLOAD_CHUNK)
            resp = web.StreamResponse(
                headers={
                    "Content-Disposition": f'attachment; filename="{ref.replace("@", "_")}.safetensors"',
                    "Content-Type": "application/octet-stream",
                    "Cache-Control": "no-store",
                }
            )
            resp.content_length = stream.size
            await resp.prepare(request)
            while chunk := await self._store(next, chunks, b""):
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        finally:
            await self._store(opened.__exit__, None, None, None)

    async def bus_delete(self, request: web.Request) -> web.Response:
        slot_id = validate_id(request.match_info["id"])
        await self._store(self.bus.delete, slot_id)
        return json_response({"deleted": slot_id})

    async def bus_rename(self, request: web.Request) -> web.Response:
        old = validate_id(request.match_info["id"])
        body = await json_body(request)
        info = await self._store(
            functools.partial(
                self.bus.rename, old, validate_id(body.get("to")), overwrite=body.get("overwrite") is True
            )
        )
        return json_response(self._slot_json(info))

    async def bus_pin(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body.get("pinned", True), bool):
            raise ValueError("pinned must be true or false")
        info = await self._store(self.bus.pin, validate_id(request.match_info["id"]), body.get("pinned", True))
        return json_response(self._slot_json(info))

    async def _resumable(
        self, resume: ResumePrompt, slot_id: str, routes: list[int] | None = None, created: Any = None
    ) -> tuple[dict[str, Any], SlotInfo]:
        """The prompt that resumes `slot_id`, its seal checked, off the event loop, and the slot.

        With `routes` (one per image of its batch, within the gate's own route count) the gate
        takes them as its answer instead of pausing. They were decided on the version published
        at `created`: a slot parked into again since is refused (StaleRun, 409), and the answer
        carries the slot's fingerprint, which the gate checks before it sends anything on, so
        the routes never go to a batch nobody saw."""
        info = await self._store(self.bus.info, slot_id)
        answer = None
        if routes is not None:
            if isinstance(created, bool) or not isinstance(created, (int, float)) or created != info.created:
                raise StaleRun(f"slot {slot_id!r} changed since its batch was decided here: decide it again")
            answer = {"routes": routes, "fingerprint": await self._store(self.bus.fingerprint, slot_id)}
        prompt = await self._store(resume, info.meta, slot_id, answer)
        if routes is not None:  # within the gate's own routes (its prompt is sealed: trusted now)
            count, _ = _gate_routes(prompt.get(str(info.meta.get("node")), {}).get("inputs", {}))
            check_routes(routes, info.batch, count or MAX_ROUTES)
        return prompt, info

    async def resume_plan(self, request: web.Request) -> web.Response:
        """What Resume would queue, for the person to read first: {slot, count, nodes: [{class_type,
        count}]}, and what deciding the batch here needs: the gate's route count and labels (from
        the sealed prompt; routes null when it is wired, not set), the batch size and the worker
        that parked it. 403 {error, reason} for a run this ComfyUI did not park; else as POST."""
        if self.resume_prompt is None:
            return error(501, RESUME_NEEDS_COMFY)
        slot_id = validate_id(request.match_info["id"])
        try:
            prompt, info = await self._resumable(self.resume_prompt, slot_id)
        except ParkRefused as exc:
            return _refused(exc)
        gate = prompt.get(str(info.meta.get("node")), {})  # resume_prompt found it: an Image Gate
        count, labels = _gate_routes(gate.get("inputs", {}))
        worker = info.meta.get("worker")
        return web.json_response(
            {
                "slot": slot_id,
                "count": len(prompt),
                "nodes": node_summary(prompt),
                "routes": count,
                "labels": labels,
                "batch": info.batch,
                "worker": worker if isinstance(worker, str) else None,
            }
        )

    async def resume(self, request: web.Request) -> web.Response:
        """{client_id, routes?}: queue the run parked in this slot again, its gate resuming from
        the slot (see gates.comfy.resume), so the pause comes back at once; the pause goes to
        `client_id`'s tab. With `routes` (one 1-based route per image of the batch, decided in
        the browser) the gate takes them as its answer and the run goes on without pausing.
        404 no slot, 409 not a parked run, 403 {error, reason} a run this ComfyUI did not park
        (unsealed, sealed elsewhere, or altered: nothing is queued), 400 when ComfyUI refuses
        the prompt (with its node_errors) or the routes do not fit the batch, 501 without
        ComfyUI. With `worker` (one of DATASET_GATES_WORKERS) the worker resumes it instead: its
        answer is passed on, 502 when it cannot be reached."""
        slot_id = validate_id(request.match_info["id"])
        body = await json_body(request)
        if body.get("worker") is not None:  # another worker of this bus: it checks and queues
            worker = allowed(body["worker"])
            routes = body.get("routes")
            ask = {} if routes is None else {"routes": routes, "created": body.get("created")}
            status, answer = await forward_resume(worker, self.prefix, slot_id, ask)
            return json_response(answer, status=status)
        if self.queue_prompt is None or self.resume_prompt is None:
            return error(501, RESUME_NEEDS_COMFY)
        client_id = body.get("client_id")
        if client_id is not None and not isinstance(client_id, str):
            raise ValueError("client_id must be a string (this tab's websocket client id)")
        routes = body.get("routes")
        try:
            prompt, _ = await self._resumable(self.resume_prompt, slot_id, routes, body.get("created"))
        except ParkRefused as exc:
            return _refused(exc)
        try:
            prompt_id = await self.queue_prompt(prompt, client_id or None)
        except PromptRejected as exc:
            return web.json_response({"error": str(exc), "node_errors": exc.node_errors}, status=400)
        return web.json_response({"prompt_id": prompt_id})

    async def workers(self, request: web.Request) -> web.Response:
        """{"workers": [url, ...]}: where Resume may also queue a parked run (DATASET_GATES_WORKERS)."""
        return json_response({"workers": workers()})

    def _policy_json(self, policy: Policy) -> dict[str, Any]:
        return {"keep": policy.keep, "quota_bytes": policy.quota_bytes, "used_bytes": self.bus.usage()}

    async def bus_policy(self, request: web.Request) -> web.Response:
        return json_response(await self._store(lambda: self._policy_json(self.bus.policy())))

    async def bus_set_policy(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        changes = {k: body[k] for k in ("keep", "quota_bytes") if k in body}
        return json_response(await self._store(lambda: self._policy_json(self.bus.set_policy(**changes)[0])))


def _etag(token: str) -> str:
    """A strong ETag from a listing token: hashed, so any backend's token makes a valid tag
    and none is shown as it is."""
    return '"' + hashlib.blake2b(token.encode(), digest_size=16).hexdigest() + '"'


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (a list, weak tags compared weakly, `*`)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _gate_routes(inputs: dict[str, Any]) -> tuple[int | None, list[str]]:
    """A gate's route count and its labels (blanks as route numbers) from its prompt inputs; no
    count (None, no labels) when `routes` is wired to another node instead of set."""
    routes = inputs.get("routes")
    if type(routes) is not int or not 1 <= routes <= MAX_ROUTES:
        return None, []
    labels = inputs.get("labels")
    return routes, parse_labels(labels if isinstance(labels, str) else "", routes)


def _refused(exc: ParkRefused) -> web.Response:
    """403: why this parked run is not resumed here, and the reason's code for pages."""
    return json_response({"error": str(exc), "reason": exc.reason}, status=403)
