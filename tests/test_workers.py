"""Resume on another worker of a shared bus: only the workers the setting names, their answer passed on."""

from __future__ import annotations

import pytest
import torch
from aiohttp import web
from test_routes import PARKED_PROMPT, P, parked

from gates.gate.waiter import Waiter
from gates.http.routes import GateRoutes
from gates.http.workers import ENV_VAR, allowed, workers


def test_the_setting_lists_http_urls_and_refuses_anything_else():
    env = {ENV_VAR: "http://gpu-2:8188/, https://farm.example:443  http://gpu-2:8188"}
    assert workers(env) == ["http://gpu-2:8188", "https://farm.example:443"]
    assert allowed("http://gpu-2:8188/", env) == "http://gpu-2:8188"
    for other in ("http://gpu-9:8188", "http://169.254.169.254", 5, None):
        with pytest.raises(ValueError, match="worker"):
            allowed(other, env)
    for bad in ("file:///etc/passwd", "gpu-2:8188", "http://x:1/?q=1", "http://admin:s3cret@gpu-2:8188"):
        with pytest.raises(ValueError, match=ENV_VAR):
            workers({ENV_VAR: bad})


def stand_in_worker(prompt_id: str) -> tuple[web.Application, list]:
    """A worker's resume route that records each (slot id, body) it is asked, and answers `prompt_id`."""
    asked: list = []

    async def resume(request: web.Request) -> web.Response:
        asked.append((request.match_info["id"], await request.json()))
        return web.json_response({"prompt_id": prompt_id})

    app = web.Application()
    app.router.add_post(P + "/resume/{id}", resume)
    return app, asked


@pytest.fixture
async def worker(aiohttp_client):
    """A stand-in worker that records what it was asked to resume."""
    app, asked = stand_in_worker("on-the-worker")
    client = await aiohttp_client(app)
    return str(client.make_url("")).rstrip("/"), asked


async def test_resume_on_a_listed_worker_forwards_the_decision_and_passes_its_answer_on(
    aiohttp_client, store, worker, monkeypatch
):
    url, asked = worker
    monkeypatch.setenv(ENV_VAR, url)
    store.publish("parked-abc-2", torch.rand(2, 4, 4, 3), meta=parked("parked-abc-2", PARKED_PROMPT))
    table = web.RouteTableDef()
    GateRoutes(store, Waiter()).add_to(table)  # gates serve: no queue of its own
    app = web.Application()
    app.add_routes(table)
    client = await aiohttp_client(app)
    assert await (await client.get(P + "/workers")).json() == {"workers": [url]}
    resp = await client.post(P + "/resume/parked-abc-2", json={"worker": url + "/", "routes": [2, 1], "created": 5.0})
    assert resp.status == 200 and await resp.json() == {"prompt_id": "on-the-worker"}
    assert asked == [("parked-abc-2", {"routes": [2, 1], "created": 5.0})]  # the worker checks the version
    resp = await client.post(P + "/resume/parked-abc-2", json={"worker": "http://127.0.0.1:1"})
    assert resp.status == 400 and ENV_VAR in (await resp.json())["error"]
    monkeypatch.setenv(ENV_VAR, "http://127.0.0.1:1")  # listed, but nothing listens there
    resp = await client.post(P + "/resume/parked-abc-2", json={"worker": "http://127.0.0.1:1"})
    assert resp.status == 502 and "did not answer" in (await resp.json())["error"]
