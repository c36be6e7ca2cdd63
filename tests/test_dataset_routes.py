"""The dataset routes: reports of the folders read, refusals as 4xx, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from dataset_files import decided_set

from gates.dataset.report import Recent
from gates.dataset.roots import Roots
from gates.http.dataset_routes import DatasetRoutes
from gates.http.guard import guard


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return decided_set(tmp_path / "set")


async def client_for(aiohttp_client, routes: DatasetRoutes):
    app = web.Application()
    for method, path, handler in routes.routes():
        app.router.add_route(method, path, guard(handler))
    return await aiohttp_client(app)


async def test_recent_folders_are_reported_newest_first_and_a_gone_one_says_why(aiohttp_client, dataset, tmp_path):
    recent = Recent()
    recent.add(str(tmp_path / "gone"), 0)
    recent.add(str(dataset), 0)
    client = await client_for(aiohttp_client, DatasetRoutes(lambda: Roots(None), recent))
    body = await (await client.get("/dataset/recent")).json()
    first, second = body["datasets"]
    assert first["folder"] == str(dataset) and first["progress"] == "2 / 3 decided: 1 keep · 1 drop"
    assert first["kept"] == 0 and first["buckets"] == [{"bucket": "1024x704", "count": 1}]
    assert second["folder"] == str(tmp_path / "gone") and "error" in second


async def test_a_report_outside_the_roots_is_403_and_a_bad_folder_or_depth_400(aiohttp_client, dataset, tmp_path):
    client = await client_for(aiohttp_client, DatasetRoutes(lambda: Roots([tmp_path / "other"]), Recent()))
    refused = await client.get("/dataset/report", params={"folder": str(dataset)})
    assert refused.status == 403 and "outside the folders" in (await refused.json())["error"]
    client = await client_for(aiohttp_client, DatasetRoutes(lambda: Roots(None), Recent()))
    for params in ({"folder": str(tmp_path / "nothing")}, {"folder": str(dataset), "depth": "x"}, {"folder": ""}):
        response = await client.get("/dataset/report", params=params)
        assert response.status == 400, params
    ok = await client.get("/dataset/report", params={"folder": str(dataset), "depth": "1"})
    assert (await ok.json())["total"] == 3
