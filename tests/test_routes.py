"""The HTTP routes on a real aiohttp test server: bus browsing, answers to a paused gate, limits."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import threading
import weakref
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
from aiohttp import FormData, web
from crafted_slots import CRAFTED, with_header
from PIL import Image

from gates.bus.local.store import SlotStore
from gates.comfy.resume import resume_prompt
from gates.gate.parking import parked_meta
from gates.gate.waiter import Waiter
from gates.http import pause_routes, previews
from gates.http import routes as routes_mod
from gates.http.guard import PromptRejected
from gates.http.routes import GateRoutes

P = routes_mod.PREFIX


@pytest.fixture
def store(tmp_path) -> SlotStore:
    s = SlotStore(tmp_path / "gate_bus")
    s.publish("a", torch.rand(3, 40, 30, 3), torch.rand(3, 40, 30), meta={"route": 1})
    s.publish("b", torch.rand(1, 8, 8, 3, dtype=torch.bfloat16))
    return s


@pytest.fixture
def waiter() -> Waiter:
    return Waiter()


@pytest.fixture
def sockets() -> set[str]:
    """Client ids with an open websocket, as ComfyUI's PromptServer.instance.sockets would say."""
    return {"tab-a", "tab-b"}


@pytest.fixture
async def client(aiohttp_client, store, waiter, sockets):
    table = web.RouteTableDef()
    GateRoutes(store, waiter, connected=sockets.__contains__).add_to(table)
    app = web.Application()
    app.add_routes(table)
    return await aiohttp_client(app)


def png(arr: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def mask_form(node, token, data: bytes | None = None, index=None, clear=False) -> FormData:
    form = FormData(default_to_multipart=True)
    form.add_field("node", node)
    form.add_field("token", token)
    if index is not None:
        form.add_field("index", str(index))
    if clear:
        form.add_field("clear", "1")
    if data is not None:
        form.add_field("mask", data, filename="mask.png", content_type="image/png")
    return form


# -- bus ---------------------------------------------------------------------------------------


async def test_list_returns_slots_with_thumbnail_urls(client, store):
    resp = await client.get(f"{P}/bus/list")
    assert resp.status == 200
    body = await resp.json()
    assert body["bus"] == store.root.name  # the bus by name, never a server path
    slots = {s["id"]: s for s in body["slots"]}
    assert set(slots) == {"a", "b"}
    assert body["ids"] == [s["id"] for s in body["slots"]]  # the seed's field, newest first
    assert slots["a"]["batch"] == 3 and slots["b"]["image_dtype"] == "bfloat16"
    assert "thumb" not in slots["a"]  # no server paths leak
    thumb = await client.get(slots["a"]["thumb_url"])
    assert thumb.status == 200 and thumb.content_type == "image/png"
    assert Image.open(io.BytesIO(await thumb.read())).size[0] <= 256


async def test_an_unchanged_listing_is_a_304_and_a_changed_one_is_not(client, store, monkeypatch):
    """The sidebar's poll: If-None-Match with the last ETag costs no listing while nothing
    changed, and gets the new rows once something did."""
    first = await client.get(f"{P}/bus/list")
    etag = first.headers["ETag"]
    assert first.status == 200 and etag.startswith('"') and first.headers["Cache-Control"] == "no-cache"
    monkeypatch.setattr(SlotStore, "list", lambda self: pytest.fail("a 304 lists nothing"))
    for header in (etag, f'"other", W/{etag}', "*"):
        again = await client.get(f"{P}/bus/list", headers={"If-None-Match": header})
        assert again.status == 304 and again.headers["ETag"] == etag and await again.read() == b""
    monkeypatch.undo()
    store.pin("b")
    changed = await client.get(f"{P}/bus/list", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag
    assert {s["id"]: s["pinned"] for s in (await changed.json())["slots"]} == {"a": False, "b": True}
    stale = await client.get(f"{P}/bus/list", headers={"If-None-Match": '"something else"'})
    assert stale.status == 200 and stale.headers["ETag"] == changed.headers["ETag"]


async def test_info_image_and_tensor_download(client, store):
    info = await (await client.get(f"{P}/bus/info/a")).json()
    assert info["image_shape"] == [3, 40, 30, 3] and info["meta"] == {"route": 1}
    page = await client.get(f"{P}/bus/image/a/2")
    assert page.status == 200
    img = Image.open(io.BytesIO(await page.read()))
    assert img.size == (30, 40)
    expected = (store.load("a")[0][2].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(np.asarray(img.convert("RGB")), expected)
    data = await (await client.get(f"{P}/bus/tensors/a")).read()
    assert data == (store.slot_dir("a") / "slot.safetensors").read_bytes()


@pytest.mark.parametrize(
    "path, status",
    [
        ("/bus/info/missing", 404),
        ("/bus/thumb/missing", 404),
        ("/bus/tensors/missing", 404),
        ("/bus/info/.hidden", 400),
        ("/bus/info/a..b.", 400),
        ("/bus/info/a%20b", 400),
        ("/bus/image/a/3", 400),
        ("/bus/image/a/-1", 400),
        ("/bus/image/a/x", 400),
        ("/bus/info/" + "x" * 65, 400),
    ],
)
async def test_bad_or_missing_ids_get_4xx_with_a_message(client, path, status):
    resp = await client.get(P + path)
    assert resp.status == status
    assert (await resp.json())["error"]


async def test_traversal_never_reaches_files_outside(client, tmp_path):
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT")
    for path in ["/bus/thumb/..%2Fsecret.txt", "/bus/tensors/..%2F..%2Fsecret.txt", "/bus/thumb/../../secret.txt"]:
        resp = await client.get(P + path)
        assert resp.status in (400, 404)
        assert "TOP-SECRET-CONTENT" not in await resp.text()


async def test_delete_and_rename(client, store):
    resp = await client.post(f"{P}/bus/a/rename", json={"to": "b"})
    assert resp.status == 409 and store.exists("a")
    resp = await client.post(f"{P}/bus/a/rename", json={"to": "../c"})
    assert resp.status == 400 and "letters, digits" in (await resp.json())["error"]
    resp = await client.post(f"{P}/bus/a/rename", json={"to": "c"})
    assert resp.status == 200 and (await resp.json())["id"] == "c"
    assert store.exists("c") and not store.exists("a")
    resp = await client.post(f"{P}/bus/c/rename", data=b"not json")
    assert resp.status == 400
    assert (await client.delete(f"{P}/bus/c")).status == 200
    assert not store.exists("c")
    assert (await client.delete(f"{P}/bus/c")).status == 404


@pytest.mark.parametrize("name", list(CRAFTED))
async def test_a_crafted_slot_is_a_damaged_row_in_the_list(client, store, name):
    (store.root / "crafted").mkdir()
    (store.root / "crafted" / "slot.safetensors").write_bytes(CRAFTED[name])
    resp = await client.get(f"{P}/bus/list")
    assert resp.status == 200
    slots = {s["id"]: s for s in (await resp.json())["slots"]}
    assert slots["crafted"]["error"] and slots["a"]["error"] is None
    assert (await client.get(f"{P}/bus/info/crafted")).status == 422


async def test_numbers_too_big_for_a_float_list_as_strict_json(client, store):
    text = '{"big": 1e999, "nan": NaN, "ok": [1.5, -1e999]}'
    path = store.slot_dir("a") / "slot.safetensors"
    path.write_bytes(with_header(path.read_bytes(), lambda h: h["__metadata__"].update(meta=text)))
    rows_of = {
        "list": lambda body: body["slots"],
        "info/a": lambda body: [body],
        "history/a": lambda body: body["versions"],
    }
    for view, rows in rows_of.items():
        resp = await client.get(f"{P}/bus/{view}")
        assert resp.status == 200 and "Infinity" not in await resp.text()
        strict = json.loads(await resp.text(), parse_constant=lambda c: pytest.fail(f"printed {c}"))
        assert {"big": None, "nan": None, "ok": [1.5, None]} in [row["meta"] for row in rows(strict)]


async def test_a_policy_file_nested_deep_is_a_400_not_a_500(client, store):
    (store.root / ".policy.json").write_text("[" * 40_000)
    resp = await client.get(f"{P}/bus/policy")
    assert resp.status == 400 and "nested deeper than 64 levels" in (await resp.json())["error"]


async def test_corrupt_slot_is_422_not_500(client, store):
    (store.slot_dir("b") / "slot.safetensors").write_bytes(b"\x00" * 3)
    resp = await client.get(f"{P}/bus/info/b")
    assert resp.status == 422 and "'b'" in (await resp.json())["error"]
    listed = await (await client.get(f"{P}/bus/list")).json()
    assert next(s for s in listed["slots"] if s["id"] == "b")["error"]


async def test_verify_reads_the_whole_file_and_finds_what_a_listing_cannot(client, store):
    """A flipped tensor byte leaves the header whole: the list and info look healthy, and only
    a check of the checksum (this route, a load, a download) finds it."""
    assert await (await client.get(f"{P}/bus/verify/a")).json() == {"ref": "a", "verified": True}
    path = store.slot_dir("a") / "slot.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    assert (await client.get(f"{P}/bus/info/a")).status == 200
    resp = await client.get(f"{P}/bus/verify/a")
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error.startswith("slot 'a': failed its checksum") and str(store.root) not in error
    assert (await client.get(f"{P}/bus/verify/missing")).status == 404
    assert (await client.get(f"{P}/bus/verify/a@-1")).status == 404


async def test_mask_renders_white_where_masked(client, store):
    mask = torch.zeros(3, 40, 30)
    mask[1, :20] = 1.0
    store.publish("m", torch.rand(3, 40, 30, 3), mask)
    resp = await client.get(f"{P}/bus/mask/m/1")
    assert resp.status == 200 and resp.content_type == "image/png"
    picture = Image.open(io.BytesIO(await resp.read()))
    assert picture.mode == "L" and picture.size == (30, 40)
    assert picture.getpixel((5, 5)) == 255 and picture.getpixel((5, 30)) == 0
    resp = await client.get(f"{P}/bus/mask/b/0")
    assert resp.status == 404 and (await resp.json())["error"] == "slot 'b' has no mask"
    assert (await client.get(f"{P}/bus/mask/m/3")).status == 400


# -- a paused gate -------------------------------------------------------------------------------


def pause(waiter: Waiter, batch: int = 2, node: str = "12:5"):
    image = torch.rand(batch, 16, 12, 3)
    return waiter.arm(node, image, routes=3, client_id="tab-a"), image


async def test_choice_wakes_the_gate(client, waiter):
    pending, _ = pause(waiter)
    decision = asyncio.get_running_loop().run_in_executor(None, waiter.wait, pending, lambda: False)
    resp = await client.post(f"{P}/choice", json={"node": "12:5", "token": pending.token, "route": 3})
    assert resp.status == 200
    assert (await asyncio.wait_for(decision, 2.0)).route == 3
    again = await client.post(f"{P}/choice", json={"node": "12:5", "token": pending.token, "route": 1})
    assert again.status == 409


@pytest.mark.parametrize(
    "body, status",
    [
        ({"node": "12:5", "token": "old", "route": 1}, 409),
        ({"node": "99", "token": "TOKEN", "route": 1}, 409),
        ({"node": "12:5", "token": "TOKEN", "route": 4}, 400),
        ({"node": "12:5", "token": "TOKEN", "route": "1"}, 400),
        ({"node": ["12:5"], "token": "TOKEN", "route": 1}, 409),
        ([1, 2], 400),
    ],
)
async def test_bad_choices_change_nothing(client, waiter, body, status):
    pending, _ = pause(waiter)
    if isinstance(body, dict) and body.get("token") == "TOKEN":
        body = dict(body, token=pending.token)
    resp = await client.post(f"{P}/choice", json=body)
    assert resp.status == status
    assert (await resp.json())["error"]
    assert waiter.paused()[0]["token"] == pending.token  # still waiting


@pytest.mark.parametrize("route", ["/choice", "/hold", "/cancel"])
async def test_a_token_that_is_not_ascii_is_409(client, waiter, route):
    pending, _ = pause(waiter)
    resp = await client.post(f"{P}{route}", json={"node": "12:5", "token": "t\u00f6ken", "route": 1})
    assert resp.status == 409 and "with that token" in (await resp.json())["error"]
    assert waiter.paused()[0]["token"] == pending.token  # still waiting


JSON_POSTS = ["/choice", "/hold", "/cancel", "/takeover", "/bus/policy", "/bus/a/pin", "/bus/a/rename", "/resume/a"]


@pytest.mark.parametrize("route", JSON_POSTS)
@pytest.mark.parametrize("opener, closer, levels", [("[", "]", 30_000), ('{"a":', "}", 10_000)])
async def test_a_body_of_60_kb_nested_deep_is_400_without_a_traceback(
    comfy_client, waiter, store, queued, route, opener, closer, levels, caplog
):
    pause(waiter)
    body = opener * levels + "1" + closer * levels  # 60 KB, under the size limit
    with caplog.at_level(logging.DEBUG):
        resp = await comfy_client.post(f"{P}{route}", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400, await resp.text()
    assert "nested deeper than 64 levels" in (await resp.json())["error"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert store.exists("a") and store.policy().keep == 1 and waiter.paused() and not queued


async def test_oversized_json_is_413(client, waiter):
    _pending, _ = pause(waiter)
    resp = await client.post(
        f"{P}/hold", data=json.dumps({"node": "x" * 100_000}), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
    # an answer may carry a batch's captions: its limit is 2 MiB
    resp = await client.post(
        f"{P}/choice", data=json.dumps({"node": "x" * (2 << 20)}), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413


async def test_cancel_stops_the_gate(client, waiter):
    pending, _ = pause(waiter)
    resp = await client.post(f"{P}/cancel", json={"node": "12:5", "token": pending.token})
    assert resp.status == 200
    assert waiter.wait(pending, lambda: False).route is None


async def test_pending_lists_waiting_gates_for_a_reloaded_tab(client, waiter, sockets):
    pending, _ = pause(waiter)
    sockets.discard("tab-a")  # the owner reloads: its socket is closed for a moment ...
    body = await (await client.get(f"{P}/pending", params={"client_id": "tab-a"})).json()
    assert [p["token"] for p in body["pending"]] == [pending.token]  # ... and it still owns it


async def test_pending_hands_tokens_to_the_owner_tab_only(client, waiter):
    pending, _ = pause(waiter)
    other = (await (await client.get(f"{P}/pending", params={"client_id": "tab-b"})).json())["pending"]
    assert len(other) == 1 and "token" not in other[0]
    assert (other[0]["node"], other[0]["owner"], other[0]["orphaned"]) == ("12:5", "other", False)
    anonymous = (await (await client.get(f"{P}/pending")).json())["pending"]
    assert len(anonymous) == 1 and "token" not in anonymous[0]
    assert pending.token not in json.dumps([other, anonymous])


async def test_takeover_only_when_the_owner_tab_is_gone(client, waiter, sockets):
    pending, _ = pause(waiter)
    old = pending.token
    resp = await client.post(f"{P}/takeover", json={"node": "12:5", "client_id": "tab-b"})
    assert resp.status == 409 and "still open" in (await resp.json())["error"]
    assert waiter.paused()[0]["token"] == old
    sockets.discard("tab-a")  # the owner tab was closed
    listed = (await (await client.get(f"{P}/pending", params={"client_id": "tab-b"})).json())["pending"]
    assert listed[0]["orphaned"] is True and "token" not in listed[0]
    resp = await client.post(f"{P}/takeover", json={"node": "12:5", "client_id": "tab-b"})
    assert resp.status == 200
    taken = await resp.json()
    assert taken["node"] == "12:5" and taken["token"] not in (None, old) and taken["routes"] == 3
    # The old token is dead everywhere, with a message that says why.
    for call in (
        client.post(f"{P}/choice", json={"node": "12:5", "token": old, "route": 1}),
        client.post(f"{P}/cancel", json={"node": "12:5", "token": old}),
        client.post(f"{P}/mask", data=mask_form("12:5", old, clear=True)),
        client.get(f"{P}/preview", params={"node": "12:5", "token": old}),
    ):
        resp = await call
        assert resp.status == 409
        assert "taken over by another tab" in (await resp.json())["error"]
    mine = (await (await client.get(f"{P}/pending", params={"client_id": "tab-b"})).json())["pending"]
    assert [p["token"] for p in mine] == [taken["token"]]
    decision = asyncio.get_running_loop().run_in_executor(None, waiter.wait, pending, lambda: False)
    resp = await client.post(f"{P}/choice", json={"node": "12:5", "token": taken["token"], "route": 2})
    assert resp.status == 200
    assert (await asyncio.wait_for(decision, 2.0)).route == 2


async def test_a_non_owner_answer_is_409_and_says_the_pause_is_another_tabs(client, waiter):
    pause(waiter)
    resp = await client.post(f"{P}/choice", json={"node": "12:5", "token": "guessed", "route": 1})
    assert resp.status == 409
    assert "belongs to another tab" in (await resp.json())["error"]


@pytest.mark.parametrize(
    "body, status",
    [
        ({"node": "12:5"}, 400),
        ({"node": "12:5", "client_id": ""}, 400),
        ({"node": "12:5", "client_id": ["tab-c"]}, 400),
        ({"node": "99", "client_id": "tab-c"}, 409),
        ([1], 400),
    ],
)
async def test_bad_takeovers_change_nothing(client, waiter, sockets, body, status):
    pending, _ = pause(waiter)
    sockets.clear()
    resp = await client.post(f"{P}/takeover", json=body)
    assert resp.status == status and (await resp.json())["error"]
    assert waiter.paused()[0]["token"] == pending.token


async def test_preview_is_a_small_png_of_the_requested_image(client, waiter):
    pending, image = pause(waiter)
    resp = await client.get(f"{P}/preview", params={"node": "12:5", "token": pending.token, "index": 1})
    assert resp.status == 200
    got = np.asarray(Image.open(io.BytesIO(await resp.read())).convert("RGB"))
    assert np.array_equal(got, (image[1] * 255).round().to(torch.uint8).numpy())
    bad = await client.get(f"{P}/preview", params={"node": "12:5", "token": pending.token, "index": 2})
    assert bad.status == 400
    stale = await client.get(f"{P}/preview", params={"node": "12:5", "token": "nope"})
    assert stale.status == 409


async def test_a_dataset_pages_images_are_shown_and_painted_at_their_own_size(client, waiter):
    image = torch.rand(2, 16, 12, 3)  # a page: image 1 is 10x6, padded into the page's 16x12
    pending = waiter.arm("12:5", image, routes=3, client_id="tab-a", sizes=[(16, 12), (10, 6)])
    assert pending.public()["sizes"] == [[16, 12], [10, 6]]
    resp = await client.get(f"{P}/preview", params={"node": "12:5", "token": pending.token, "index": 1})
    got = np.asarray(Image.open(io.BytesIO(await resp.read())).convert("RGB"))
    assert np.array_equal(got, (image[1, :10, :6] * 255).round().to(torch.uint8).numpy())  # no padding shown
    grey = np.zeros((10, 6), np.uint8)
    grey[:, :3] = 255  # painted on the 10x6 image shown: its left half
    resp = await client.post(f"{P}/mask", data=mask_form("12:5", pending.token, png(grey, "L"), index=1))
    assert resp.status == 200
    waiter.choose("12:5", pending.token, 1)
    mask = waiter.wait(pending, lambda: False).masks[1]
    assert mask.shape == (16, 12)  # back in the page's batch, top-left, nothing over the padding
    assert bool((mask[:10, :3] == 255).all()) and not mask[:10, 3:].any() and not mask[10:].any()


async def test_mask_upload_alpha_and_grey_conventions(client, waiter):
    pending, _ = pause(waiter)
    rgba = np.zeros((16, 12, 4), np.uint8)  # the image's size, so no resize blurs the edges
    rgba[..., 3] = 255
    rgba[:8, :, 3] = 0  # transparent = painted = masked
    resp = await client.post(f"{P}/mask", data=mask_form("12:5", pending.token, png(rgba, "RGBA")))
    assert resp.status == 200 and (await resp.json())["painted"] == [-1]
    grey = np.zeros((16, 12), np.uint8)
    grey[:, :6] = 255
    resp = await client.post(f"{P}/mask", data=mask_form("12:5", pending.token, png(grey, "L"), index=1))
    assert resp.status == 200
    waiter.choose("12:5", pending.token, 1)
    masks = waiter.wait(pending, lambda: False).masks
    # kept as uint8 at the image's size (255 = masked): a quarter of float32's memory
    assert masks[None].dtype == torch.uint8 and masks[None].shape == pending.image.shape[1:3]
    assert bool((masks[None][:8] == 255).all()) and not masks[None][8:].any()
    assert bool((masks[1][:, :6] == 255).all()) and not masks[1][:, 6:].any()


async def test_mask_clear(client, waiter):
    pending, _ = pause(waiter)
    waiter.set_mask("12:5", pending.token, torch.ones(4, 4))
    resp = await client.post(f"{P}/mask", data=mask_form("12:5", pending.token, clear=True))
    assert resp.status == 200 and (await resp.json())["painted"] == []


@pytest.mark.parametrize(
    "kind, status",
    [
        ("garbage", 400),
        ("stale", 409),
        ("index", 400),
        ("nofile", 400),
        ("bomb", 400),
    ],
)
async def test_bad_mask_uploads(client, waiter, kind, status, monkeypatch):
    pending, _ = pause(waiter)
    token = "stale" if kind == "stale" else pending.token
    data = {"garbage": b"\x89PNG not really", "bomb": png(np.zeros((300, 300), np.uint8), "L")}.get(
        kind, png(np.zeros((4, 4), np.uint8), "L")
    )
    monkeypatch.setattr(pause_routes.images, "MAX_UPLOAD_PIXELS", 10_000)
    monkeypatch.setattr(pause_routes.images.decode_mask_upload, "__defaults__", (10_000,))
    form = mask_form("12:5", token, None if kind == "nofile" else data, index=5 if kind == "index" else None)
    resp = await client.post(f"{P}/mask", data=form)
    assert resp.status == status, await resp.text()
    assert waiter.paused()[0]["painted"] == []


async def test_mask_upload_over_the_size_cap_is_413(client, waiter, monkeypatch):
    pending, _ = pause(waiter)
    monkeypatch.setattr(pause_routes, "MAX_MASK_BYTES", 1000)
    resp = await client.post(f"{P}/mask", data=mask_form("12:5", pending.token, b"\0" * 5000))
    assert resp.status == 413


def multipart_head(boundary: str, fields: dict[str, str], then: str | None = None) -> bytes:
    """The start of a multipart body: these form fields, then the head of file field `then`."""
    out = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    if then is not None:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{then}"; filename="m.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
    return out


@pytest.mark.parametrize("fields", [{"node": "12:5", "token": "wrong"}, {"node": "7", "token": "any"}])
async def test_a_wrong_token_is_refused_before_the_mask_is_read(client, waiter, fields):
    """node and token come before the mask: the pause is looked up first, so a wrong token is
    refused while the 31 MB the request announces are still unsent. The client sends only the
    fields and the mask's first bytes, then waits: a server that read the mask before checking
    the token would wait for the rest forever."""
    pause(waiter)
    boundary = "dgboundary"
    start = multipart_head(boundary, fields, then="mask") + b"\x89PNG" + b"\0" * (64 * 1024)
    declared = 31 * 1024 * 1024
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(
            (
                f"POST {P}/mask HTTP/1.1\r\nHost: {client.host}:{client.port}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared}\r\n\r\n"
            ).encode()
            + start
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 30)
        assert status.split()[1] == b"409", status
    finally:
        writer.close()
    assert waiter.paused()[0]["painted"] == []


async def test_a_mask_before_its_node_and_token_is_refused(client, waiter):
    pending, _ = pause(waiter)
    form = FormData(default_to_multipart=True)
    form.add_field("mask", png(np.zeros((4, 4), np.uint8), "L"), filename="mask.png", content_type="image/png")
    form.add_field("node", "12:5")
    form.add_field("token", pending.token)
    resp = await client.post(f"{P}/mask", data=form)
    assert resp.status == 400 and "before the mask" in (await resp.json())["error"]
    assert waiter.paused()[0]["painted"] == []


async def test_mask_upload_must_be_multipart(client, waiter):
    pending, _ = pause(waiter)
    resp = await client.post(f"{P}/mask", json={"node": "12:5", "token": pending.token})
    assert resp.status == 400


# -- history, pins, policy -----------------------------------------------------------------------


async def test_versions_pins_and_policy(client, store):
    resp = await client.post(f"{P}/bus/policy", json={"keep": 3})
    assert resp.status == 200 and (await resp.json())["keep"] == 3
    store.publish("a", torch.zeros(1, 4, 4, 3))
    store.publish("a", torch.ones(1, 4, 4, 3))
    history = (await (await client.get(f"{P}/bus/history/a")).json())["versions"]
    assert [v["ref"] for v in history] == ["a", "a@-1", "a@-2"]
    info = await (await client.get(f"{P}/bus/info/a@-1")).json()
    assert info["version"] == -1 and info["image_shape"] == [1, 4, 4, 3]
    assert (await client.get(history[2]["thumb_url"])).status == 200
    old = await (await client.get(f"{P}/bus/tensors/a@-2")).read()
    with store.verified_stream("a@-2") as stream:
        assert old == b"".join(stream.chunks(1 << 20)) and len(old) == stream.size
    assert (await client.get(f"{P}/bus/info/a@-3")).status == 404
    assert (await client.get(f"{P}/bus/info/a@-x")).status == 400
    resp = await client.post(f"{P}/bus/a/pin", json={"pinned": True})
    assert resp.status == 200 and (await resp.json())["pinned"] is True
    assert (await client.post(f"{P}/bus/a/pin", json={"pinned": "yes"})).status == 400
    bad = await client.post(f"{P}/bus/policy", json={"keep": 0})
    assert bad.status == 400 and store.policy().keep == 3
    resp = await client.post(f"{P}/bus/policy", json={"quota_bytes": 1})
    body = await resp.json()
    assert body["quota_bytes"] == 1 and store.ids() == ["a"]  # pinned a survives, b is pruned


# -- per-image routes, hold, preview sizes ---------------------------------------------------------


async def test_choice_with_a_route_per_image(client, waiter):
    pending, _ = pause(waiter, batch=4)
    decision = asyncio.get_running_loop().run_in_executor(None, waiter.wait, pending, lambda: False)
    resp = await client.post(f"{P}/choice", json={"node": "12:5", "token": pending.token, "routes": [1, 2, 1, 3]})
    assert resp.status == 200
    assert await resp.json() == {"node": "12:5", "routes": [1, 2, 1, 3], "route": None}
    assert (await asyncio.wait_for(decision, 2.0)).routes == [1, 2, 1, 3]


async def test_one_route_still_means_every_image(client, waiter):
    pending, _ = pause(waiter, batch=3)
    resp = await client.post(f"{P}/choice", json={"node": "12:5", "token": pending.token, "route": 2})
    assert await resp.json() == {"node": "12:5", "routes": [2, 2, 2], "route": 2}
    assert waiter.wait(pending, lambda: False).routes == [2, 2, 2]


@pytest.mark.parametrize(
    "routes",
    [[1, 2], [1, 2, 1, 3, 1], [1, 2, 1, 4], [1, 0, 1, 1], [1, "2", 1, 1], [1, 2.0, 1, 1], "1,2,1,3", None, {"0": 1}],
)
async def test_a_routes_list_that_does_not_fit_the_batch_is_400(client, waiter, routes):
    pending, _ = pause(waiter, batch=4)
    resp = await client.post(f"{P}/choice", json={"node": "12:5", "token": pending.token, "routes": routes})
    assert resp.status == 400 and (await resp.json())["error"]
    assert waiter.paused()[0]["token"] == pending.token  # still waiting


async def test_hold_stops_the_countdown(client, waiter):
    image = torch.rand(2, 8, 8, 3)
    pending = waiter.arm("12:5", image, routes=2, client_id="tab-a", timeout=30, on_timeout="stop")
    listed = await (await client.get(f"{P}/pending", params={"client_id": "tab-a"})).json()
    assert listed["pending"][0]["deadline"] == pending.deadline is not None
    assert listed["pending"][0]["on_timeout"] == "stop" and listed["pending"][0]["timeout"] == 30
    resp = await client.post(f"{P}/hold", json={"node": "12:5", "token": pending.token})
    assert resp.status == 200 and await resp.json() == {"node": "12:5", "deadline": None}
    listed = await (await client.get(f"{P}/pending", params={"client_id": "tab-a"})).json()
    assert listed["pending"][0]["deadline"] is None
    stale = await client.post(f"{P}/hold", json={"node": "12:5", "token": "old"})
    assert stale.status == 409


async def test_hold_after_the_deadline_is_409(client, waiter):
    pending = waiter.arm("12:5", torch.rand(1, 8, 8, 3), routes=2, timeout=0.01)
    await asyncio.sleep(0.05)
    resp = await client.post(f"{P}/hold", json={"node": "12:5", "token": pending.token})
    assert resp.status == 409 and "timed out" in (await resp.json())["error"]


async def test_preview_side_sets_the_long_side(client, waiter):
    pending = waiter.arm("12:5", torch.rand(1, 400, 300, 3), routes=2)
    resp = await client.get(f"{P}/preview", params={"node": "12:5", "token": pending.token, "side": 160})
    assert resp.status == 200
    assert max(Image.open(io.BytesIO(await resp.read())).size) == 160
    full = await client.get(f"{P}/preview", params={"node": "12:5", "token": pending.token})
    assert Image.open(io.BytesIO(await full.read())).size == (300, 400)
    for side in (63, 1025, "big"):
        bad = await client.get(f"{P}/preview", params={"node": "12:5", "token": pending.token, "side": side})
        assert bad.status == 400


# -- resuming a parked run -------------------------------------------------------------------------

PARKED_PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
    "2": {
        "class_type": "ImageGate",
        "inputs": {"routes": 2, "image": ["1", 0], "send_id": "", "get_id": "", "timeout": 5, "on_timeout": "park"},
    },
}


PARK_SECRET = b"the routes' park secret, 32 bytes.."


def parked(slot_id: str, prompt: dict) -> dict:
    """The meta of a run this host parked in `slot_id`, sealed with its secret."""
    return parked_meta(prompt, "2", "abc", "input", slot_id, PARK_SECRET)


@pytest.fixture
def queued() -> list:
    return []


@pytest.fixture
async def comfy_client(aiohttp_client, store, waiter, queued):
    async def queue_prompt(prompt, client_id):
        if prompt.get("refuse"):
            raise PromptRejected("Prompt outputs failed validation", {"2": {"errors": []}})
        queued.append((prompt, client_id))
        return f"pid-{len(queued)}"

    table = web.RouteTableDef()
    resume = lambda meta, slot_id, answer: resume_prompt(meta, slot_id, PARK_SECRET, answer)  # noqa: E731
    GateRoutes(store, waiter, queue_prompt=queue_prompt, resume_prompt=resume).add_to(table)
    app = web.Application()
    app.add_routes(table)
    return await aiohttp_client(app)


async def test_resume_queues_the_parked_prompt_reading_the_slot(comfy_client, store, queued):
    store.publish("parked-abc-2", torch.rand(1, 4, 4, 3), meta=parked("parked-abc-2", PARKED_PROMPT))
    resp = await comfy_client.post(f"{P}/resume/parked-abc-2", json={"client_id": "tab-a"})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"prompt_id": "pid-1"}
    ((prompt, client_id),) = queued
    assert client_id == "tab-a"
    assert prompt["2"]["inputs"] == {
        "routes": 2,
        "send_id": "parked-abc-2",
        "get_id": "parked-abc-2",
        "timeout": 0,
        "on_timeout": "park",
    }
    resp = await comfy_client.post(f"{P}/resume/parked-abc-2")  # no body: no client id
    assert resp.status == 200 and queued[1][1] is None


async def test_resume_with_routes_decided_in_the_browser_queues_them_as_the_gates_answer(comfy_client, store, queued):
    info = store.publish("parked-abc-2", torch.rand(3, 4, 4, 3), meta=parked("parked-abc-2", PARKED_PROMPT))
    # one per image, each within the gate's own 2 routes
    for routes in ([1, 2], [1, 2, 3], [1, 2, 11], [1, "2", 1], "1,2,1"):
        resp = await comfy_client.post(f"{P}/resume/parked-abc-2", json={"routes": routes, "created": info.created})
        assert resp.status == 400 and "route" in (await resp.json())["error"], routes
    for created in (None, info.created - 1, True):  # decided on another version, or none named
        resp = await comfy_client.post(f"{P}/resume/parked-abc-2", json={"routes": [2, 1, 2], "created": created})
        assert resp.status == 409 and "decide it again" in (await resp.json())["error"]
    assert queued == []
    body = {"routes": [2, 1, 2], "created": info.created}
    resp = await comfy_client.post(f"{P}/resume/parked-abc-2", json=body)
    assert resp.status == 200
    ((prompt, _),) = queued
    answer = json.loads(prompt["2"]["inputs"]["answer"])
    assert answer == {"routes": [2, 1, 2], "fingerprint": store.fingerprint("parked-abc-2")}


async def test_resume_answers_404_409_and_400(comfy_client, store, queued):
    assert (await comfy_client.post(f"{P}/resume/nothing-here", json={})).status == 404
    resp = await comfy_client.post(f"{P}/resume/a", json={})  # a plain slot
    assert resp.status == 409 and "not a parked run" in (await resp.json())["error"]
    assert (await comfy_client.post(f"{P}/resume/..%2Fa", json={})).status in (400, 404)
    store.publish("p", torch.rand(1, 4, 4, 3), meta=parked("p", dict(PARKED_PROMPT, refuse=True)))
    resp = await comfy_client.post(f"{P}/resume/p", json={"client_id": 5})
    assert resp.status == 400 and "client_id" in (await resp.json())["error"]
    resp = await comfy_client.post(f"{P}/resume/p", json={"client_id": "tab-a"})
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "Prompt outputs failed validation"
    assert body["node_errors"] == {"2": {"errors": []}}
    assert queued == []


async def test_resume_without_comfyui_is_501(client, store):
    store.publish("p", torch.rand(1, 4, 4, 3), meta=parked("p", PARKED_PROMPT))
    for resp in (await client.post(f"{P}/resume/p", json={}), await client.get(f"{P}/resume/p")):
        assert resp.status == 501
        assert await resp.json() == {"error": "Resume needs ComfyUI: open this bus in ComfyUI's sidebar"}


@pytest.mark.parametrize(
    "meta, reason",
    [
        ({"parked": True, "prompt": PARKED_PROMPT, "node": "2", "prompt_id": "abc"}, "unsigned"),
        (parked("another-slot", PARKED_PROMPT), "altered"),  # a sealed meta copied to this slot
        (parked_meta(PARKED_PROMPT, "2", "abc", "input", "planted", b"not our secret at all, 32 bytes."), "foreign"),
    ],
)
async def test_resume_refuses_a_planted_parked_slot_with_403_and_queues_nothing(
    comfy_client, store, queued, meta, reason
):
    store.publish("planted", torch.rand(1, 4, 4, 3), meta=meta)
    for resp in (
        await comfy_client.get(f"{P}/resume/planted"),
        await comfy_client.post(f"{P}/resume/planted", json={"client_id": "tab-a"}),
    ):
        body = await resp.json()
        assert resp.status == 403 and body["reason"] == reason and "refused" in body["error"], body
    assert queued == []


async def test_resume_plan_counts_the_nodes_it_would_queue(comfy_client, store, queued):
    store.publish("parked-abc-2", torch.rand(1, 4, 4, 3), meta=parked("parked-abc-2", PARKED_PROMPT))
    resp = await comfy_client.get(f"{P}/resume/parked-abc-2")
    assert resp.status == 200
    assert await resp.json() == {
        "slot": "parked-abc-2",
        "count": 2,
        "nodes": [{"class_type": "ImageGate", "count": 1}, {"class_type": "LoadImage", "count": 1}],
        "routes": 2,
        "labels": ["1", "2"],
        "batch": 1,
        "worker": None,
    }
    assert (await comfy_client.get(f"{P}/resume/a")).status == 409  # not parked
    assert (await comfy_client.get(f"{P}/resume/nothing-here")).status == 404
    assert queued == []  # looking queues nothing


async def test_resume_plan_gives_the_gates_routes_labels_batch_and_worker(comfy_client, store, queued):
    """What the slot browser draws the route buttons of "Decide here" from: the sealed prompt's
    gate (its labels, blanks as numbers), the batch and the worker that parked it."""
    gate = PARKED_PROMPT["2"]
    prompt = {**PARKED_PROMPT, "2": {**gate, "inputs": {**gate["inputs"], "routes": 3, "labels": "keep, ,fix"}}}
    meta = parked("farm", prompt) | {"worker": "gpu-2:8188"}  # the worker is not sealed
    store.publish("farm", torch.rand(4, 4, 4, 3), meta=meta)
    body = await (await comfy_client.get(f"{P}/resume/farm")).json()
    assert {k: body[k] for k in ("routes", "labels", "batch", "worker")} == {
        "routes": 3,
        "labels": ["keep", "2", "fix"],
        "batch": 4,
        "worker": "gpu-2:8188",
    }
    wired = {**PARKED_PROMPT, "2": {**gate, "inputs": {**gate["inputs"], "routes": ["1", 0]}}}
    store.publish("wired", torch.rand(2, 4, 4, 3), meta=parked("wired", wired))
    body = await (await comfy_client.get(f"{P}/resume/wired")).json()
    assert (body["routes"], body["labels"], body["batch"]) == (None, [], 2)  # no count to draw from
    assert queued == []


@pytest.fixture
def renders(monkeypatch) -> list[tuple]:
    """Every preview render's arguments, in order (images.preview still does the work)."""
    from gates import images as images_mod

    calls: list[tuple] = []
    real = images_mod.preview
    monkeypatch.setattr(images_mod, "preview", lambda *a: calls.append(a) or real(*a))
    return calls


async def _until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_a_pause_renders_its_preview_before_the_page_asks(client, waiter, renders):
    image = torch.rand(1, 40, 30, 3)
    pending = waiter.arm("12:5", image, routes=2, client_id="tab-a")
    await _until(lambda: len(renders) == 1)  # no request was made
    assert renders[0][1] == previews.PREVIEW_SIDES[1]
    resp = await client.get(f"{P}/preview", params={"node": "12:5", "token": pending.token})
    got = np.asarray(Image.open(io.BytesIO(await resp.read())).convert("RGB"))
    assert np.array_equal(got, (image[0] * 255).round().to(torch.uint8).numpy())
    assert len(renders) == 1


async def test_a_batch_pause_renders_its_first_grid_thumbnails_ahead(client, waiter, renders):
    pending = waiter.arm("7:1", torch.rand(10, 300, 200, 3), routes=2, client_id="tab-a")
    await _until(lambda: len(renders) == previews.RENDER_AHEAD)
    assert {side for _, side in renders} == {previews.GRID_SIDE}
    for i in range(10):
        params = {"node": "7:1", "token": pending.token, "index": i, "side": previews.GRID_SIDE}
        resp = await client.get(f"{P}/preview", params=params)
        assert resp.status == 200 and max(Image.open(io.BytesIO(await resp.read())).size) == previews.GRID_SIDE
    assert len(renders) == 10


def test_the_grid_thumbnails_rendered_ahead_are_the_size_the_page_asks_for():
    grid_js = (Path(__file__).resolve().parents[1] / "web" / "gate_grid.js").read_text(encoding="utf-8")
    assert f"export const THUMB_SIDE = {previews.GRID_SIDE};" in grid_js


async def test_a_failed_preview_render_is_not_kept(client, waiter, monkeypatch):
    from gates import images as images_mod

    real, failed = images_mod.preview, []

    def fails_once(*a):
        if not failed:
            failed.append(True)
            raise ValueError("the image went away")
        return real(*a)

    monkeypatch.setattr(images_mod, "preview", fails_once)
    pending = waiter.arm("12:5", torch.rand(1, 16, 12, 3), routes=2, client_id="tab-a")
    await _until(lambda: failed)  # the render at the pause failed
    resp = await client.get(f"{P}/preview", params={"node": "12:5", "token": pending.token})
    assert resp.status == 200 and (await resp.read())[:8] == images_mod.PNG_SIGNATURE


async def test_a_request_that_goes_away_does_not_cancel_a_render_another_waits_for(client, waiter, monkeypatch):
    from gates import images as images_mod

    started, release = [], threading.Event()
    real = images_mod.preview

    def slow(*a):
        started.append(a)
        release.wait(5)
        return real(*a)

    monkeypatch.setattr(images_mod, "preview", slow)
    for node in ("1:1", "1:2"):  # both render threads busy: the next render waits in the queue
        waiter.arm(node, torch.rand(1, 8, 8, 3), routes=2, client_id="tab-a")
    await _until(lambda: len(started) == previews.RENDER_THREADS)
    pending = waiter.arm("12:5", torch.rand(1, 16, 12, 3), routes=2, client_id="tab-a")
    params = {"node": "12:5", "token": pending.token}
    first = asyncio.ensure_future(client.get(f"{P}/preview", params=params))
    second = asyncio.ensure_future(client.get(f"{P}/preview", params=params))
    await asyncio.sleep(0.1)
    first.cancel()  # one tab goes away while its render is still queued
    await asyncio.sleep(0.1)
    release.set()
    resp = await second
    assert resp.status == 200 and (await resp.read())[:8] == images_mod.PNG_SIGNATURE


async def test_a_flood_of_previews_gets_503_past_the_render_limit_and_the_limit_comes_back(client, waiter, monkeypatch):
    from gates import images as images_mod

    release, real = threading.Event(), images_mod.preview
    monkeypatch.setattr(images_mod, "preview", lambda *a: release.wait(5) and real(*a))
    pending = waiter.arm("7:1", torch.rand(16, 64, 48, 3), routes=2, client_id="tab-a")  # renders ahead
    flood = [
        asyncio.ensure_future(
            client.get(f"{P}/preview", params={"node": "7:1", "token": pending.token, "index": i, "side": 64 + i})
        )
        for i in range(16)
    ]
    await asyncio.sleep(0.3)  # every request has been admitted or refused while the renders wait
    release.set()
    statuses = [(await request).status for request in flood]
    admitted = previews.MAX_WAITING_RENDERS - previews.RENDER_AHEAD
    assert statuses.count(200) == admitted and statuses.count(503) == 16 - admitted
    again = [
        await client.get(f"{P}/preview", params={"node": "7:1", "token": pending.token, "index": i, "side": 200})
        for i in range(previews.MAX_WAITING_RENDERS + 2)
    ]
    assert [r.status for r in again] == [200] * (previews.MAX_WAITING_RENDERS + 2)


async def test_the_preview_cache_keeps_a_whole_64_image_grid(client, waiter, renders):
    """Grid thumbnails of a 64-image pause are rendered once each, however often asked for."""
    pending = waiter.arm("7:1", torch.rand(64, 48, 64, 3), routes=2, client_id="tab-a")
    for _ in range(2):
        for i in range(64):
            resp = await client.get(
                f"{P}/preview", params={"node": "7:1", "token": pending.token, "index": i, "side": 160}
            )
            assert resp.status == 200
    assert len(renders) == 64


def test_a_rendered_preview_whose_callback_is_late_is_never_evicted_uncounted(store, waiter, monkeypatch):
    """A preview can finish rendering before its own done-callback has counted its bytes (a
    thread switch between the two). Another preview's callback must not evict it meanwhile:
    its bytes would be subtracted without ever having been added, and the cache would hold
    that much more than its budget from then on."""
    monkeypatch.setattr(previews, "PREVIEW_CACHE_BYTES", 1)  # any two previews are over budget
    gate_routes = GateRoutes(store, waiter)
    late, newer = Future(), Future()
    late.set_result(b"x" * 10)
    newer.set_result(b"y" * 20)
    gate_routes.previews._previews[("7:1", "tok", 0, 1024)] = late  # rendered; its callback not run yet
    gate_routes.previews._previews[("7:1", "tok", 1, 1024)] = newer
    gate_routes.previews._preview_done(("7:1", "tok", 1, 1024), newer)
    gate_routes.previews._preview_done(("7:1", "tok", 0, 1024), late)
    held = sum(len(f.result()) for f in gate_routes.previews._previews.values())
    assert gate_routes.previews._preview_bytes == held == 10  # the budget keeps only the newest counted one


async def test_a_refused_preview_keeps_nothing_of_an_ended_pause_alive(client, waiter, monkeypatch):
    """The 503 of a full render queue is raised out of the handler that holds the pause, and
    aiohttp keeps a keep-alive connection's last response: with its traceback, the whole batch
    would outlive the pause by up to the keep-alive timeout (75 s)."""
    monkeypatch.setattr(previews, "MAX_WAITING_RENDERS", 0)  # every render is refused
    image = torch.rand(4, 32, 32, 3)
    alive = weakref.ref(image)
    pending = waiter.arm("7:1", image, routes=2, client_id="tab-a")
    resp = await client.get(f"{P}/preview", params={"node": "7:1", "token": pending.token, "index": 0, "side": 64})
    assert resp.status == 503
    await resp.read()
    decision = asyncio.get_running_loop().run_in_executor(None, waiter.wait, pending, lambda: False)
    waiter.stop("7:1", pending.token)
    await decision
    del image, pending, decision
    gc.collect()
    assert alive() is None


# -- clients that go away ---------------------------------------------------------------------


@pytest.fixture
async def plain_server(store, waiter):
    """The routes on a server run as ComfyUI and `gates serve` run theirs: a handler is not
    cancelled when its client goes away (aiohttp's test server would cancel it)."""
    table = web.RouteTableDef()
    GateRoutes(store, waiter).add_to(table)
    app = web.Application()
    app.add_routes(table)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner
    await runner.cleanup()


async def _hang_up(runner: web.AppRunner, request: bytes, read_first: int) -> None:
    """Send `request`, read `read_first` bytes of the reply, then reset the connection (RST), as
    a closed tab or a killed curl does; return once the server is done with the connection."""
    import socket as socket_mod
    import struct

    reader, writer = await asyncio.open_connection(*runner.addresses[0][:2])
    writer.write(request)
    await writer.drain()
    if read_first:
        await reader.readexactly(read_first)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket_mod.SOL_SOCKET, socket_mod.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    for _ in range(600):  # the server notices at its next read or write
        if not runner.server.connections:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server kept the connection of a client that went away")


@pytest.mark.parametrize("kind", ["download", "mask upload", "json body"])
async def test_a_client_that_goes_away_leaves_no_traceback(plain_server, store, waiter, caplog, kind):
    caplog.set_level("DEBUG", logger="aiohttp")
    store.publish("big", torch.rand(4, 1024, 1024, 3))  # 48 MiB: far more than socket buffers hold
    pending, _ = pause(waiter)
    head = "Host: 127.0.0.1\r\n"
    if kind == "download":
        request, read_first = f"GET {P}/bus/tensors/big HTTP/1.1\r\n{head}\r\n".encode(), 4096
    elif kind == "mask upload":
        fields = {"node": "12:5", "token": pending.token}
        body = multipart_head("dgb", fields, then="mask") + b"\0" * (64 * 1024)
        request = (
            f"POST {P}/mask HTTP/1.1\r\n{head}Content-Type: multipart/form-data; boundary=dgb\r\n"
            f"Content-Length: {1 << 20}\r\n\r\n"
        ).encode() + body
        read_first = 0
    else:
        request = (
            f"POST {P}/choice HTTP/1.1\r\n{head}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            '{"node": "12:5", '
        ).encode()
        read_first = 0
    await _hang_up(plain_server, request, read_first)
    traced = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert traced == [], [r.getMessage() for r in traced]
    assert waiter.paused()[0]["token"] == pending.token  # the pause is still there, unanswered


# -- captions in the answer, and a Text Gate's pause ---------------------------------------------


async def test_choice_carries_the_captions_as_edited(client, waiter):
    image = torch.rand(3, 16, 12, 3)
    pending = waiter.arm("12:5", image, routes=3, client_id="tab-a", captions=["a", "b", "c"])
    decision = asyncio.get_running_loop().run_in_executor(None, waiter.wait, pending, lambda: False)
    body = {"node": "12:5", "token": pending.token, "routes": [1, 2, 1], "captions": ["a", "ß\r\nb", "c"]}
    resp = await client.post(f"{P}/choice", json=body)
    assert resp.status == 200
    got = await asyncio.wait_for(decision, 2.0)
    assert got.captions == ["a", "ß\r\nb", "c"] and got.routes == [1, 2, 1]


async def test_an_answer_with_long_captions_is_taken_beyond_the_usual_body_limit(client, waiter):
    long = ["x" * 60_000] * 4  # 240 KB of captions: over the 64 KiB of other bodies
    pending = waiter.arm("12:5", torch.rand(4, 8, 8, 3), routes=2, client_id="tab-a", captions=["-"] * 4)
    resp = await client.post(f"{P}/choice", json={"node": "12:5", "token": pending.token, "route": 2, "captions": long})
    assert resp.status == 200, await resp.text()
    assert waiter.wait(pending, lambda: False).captions == long


@pytest.mark.parametrize(
    "captions, error",
    [
        (["a", "b"], "2 for a batch of 3"),
        (["a", "b", None], "caption 3 must be text"),
        (["a", "b", "x" * 70_000], "caption 3 is 70,000 bytes"),
        ("a\nb\nc", "must be a list"),
        ({"0": "a"}, "must be a list"),
    ],
)
async def test_captions_that_do_not_fit_are_400_and_the_gate_still_waits(client, waiter, captions, error):
    pending = waiter.arm("12:5", torch.rand(3, 8, 8, 3), routes=3, client_id="tab-a", captions=["a", "b", "c"])
    body = {"node": "12:5", "token": pending.token, "routes": [1, 1, 1], "captions": captions}
    resp = await client.post(f"{P}/choice", json=body)
    assert resp.status == 400 and error in (await resp.json())["error"]
    assert waiter.paused()[0]["token"] == pending.token


async def test_captions_for_a_gate_that_shows_none_are_400(client, waiter):
    pending, _ = pause(waiter)
    body = {"node": "12:5", "token": pending.token, "route": 1, "captions": ["a", "b"]}
    resp = await client.post(f"{P}/choice", json=body)
    assert resp.status == 400 and "no captions" in (await resp.json())["error"]


async def test_a_text_pause_is_answered_with_its_text_and_has_no_images(client, waiter):
    pending = waiter.arm("4", None, 1, client_id="tab-a", text="a prompt")
    resp = await client.get(f"{P}/pending", params={"client_id": "tab-a"})
    (view,) = (await resp.json())["pending"]
    assert view["kind"] == "text" and view["text"] == "a prompt" and view["token"] == pending.token
    resp = await client.get(f"{P}/preview", params={"node": "4", "token": pending.token})
    assert resp.status == 400 and "Text Gate" in (await resp.json())["error"]
    resp = await client.post(f"{P}/mask", data=mask_form("4", pending.token, clear=True))
    assert resp.status == 400
    resp = await client.post(f"{P}/choice", json={"node": "4", "token": pending.token, "route": 1})
    assert resp.status == 400
    resp = await client.post(f"{P}/choice", json={"node": "4", "token": pending.token, "text": "a better prompt"})
    assert resp.status == 200 and await resp.json() == {"node": "4", "passed": True}
    assert waiter.wait(pending, lambda: False).text == "a better prompt"
