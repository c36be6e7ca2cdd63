"""End-to-end: the Image Gate and the bus nodes inside a real ComfyUI, over HTTP and websocket.

Needs COMFYUI_DIR (and COMFYUI_PYTHON); see tests/e2e/README.md. Each test talks to the one
session server from conftest.py, so every test uses its own slot ids and output prefixes.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import api_prompts
import pytest
from api_prompts import bus_load, bus_save, load_image, save_image

if not os.environ.get("COMFYUI_DIR", "").strip():
    pytest.skip(
        "e2e: set COMFYUI_DIR to a ComfyUI checkout (and COMFYUI_PYTHON to its "
        "interpreter) to run the end-to-end tests",
        allow_module_level=True,
    )

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
pytest.importorskip("requests")
pytest.importorskip("websocket", reason="e2e tests need websocket-client")
safetensors_torch = pytest.importorskip("safetensors.torch")
Image = pytest.importorskip("PIL.Image")

pytestmark = pytest.mark.e2e

PAUSE = "datasete_gate.pause"
DONE = "datasete_gate.done"
IMG_A = "e2e_gradient.png"
IMG_B = "e2e_gradient_b.png"
W, H = 40, 24  # not square, so a swapped height/width cannot pass
ROUTE_TIMEOUT = 60.0


# -- fixtures and helpers ------------------------------------------------------------------


def _rgba(flip: bool = False) -> np.ndarray:
    """A gradient with a varying alpha, so LoadImage yields a non-trivial mask."""
    x = np.arange(W)[None, :].repeat(H, 0)
    y = np.arange(H)[:, None].repeat(W, 1)
    r = x * 255 // (W - 1)
    g = y * 255 // (H - 1)
    b = (x * 7 + y * 13) % 256
    a = (x + y) * 255 // (W + H - 2)
    arr = np.stack([r, g, b, a], axis=2).astype(np.uint8)
    return arr[::-1, ::-1].copy() if flip else arr


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def load_image_reference(arr: np.ndarray) -> tuple[Any, Any]:
    """What ComfyUI's LoadImage makes of an RGBA PNG: RGB float32 / 255, mask 1 - alpha."""
    rgb = np.array(Image.fromarray(arr, "RGBA").convert("RGB")).astype(np.float32) / 255.0
    alpha = arr[:, :, 3].astype(np.float32) / 255.0
    return torch.from_numpy(rgb)[None], (1.0 - torch.from_numpy(alpha))[None]


@pytest.fixture
def images(comfy) -> dict[str, tuple[Any, Any]]:
    """Two test PNGs in ComfyUI's input folder; returns their LoadImage reference tensors."""
    out = {}
    for name, flip in ((IMG_A, False), (IMG_B, True)):
        arr = _rgba(flip)
        path = comfy.input_dir / name
        if not path.exists():
            path.write_bytes(png_bytes(arr))
        out[name] = load_image_reference(arr)
    return out


def load_slot(comfy, slot_id: str) -> dict[str, Any]:
    path = comfy.bus_dir / slot_id / "slot.safetensors"
    assert path.is_file(), f"slot {slot_id!r} has no tensor file at {path}"
    return safetensors_torch.load_file(str(path))


def saved(comfy, prefix: str) -> list[Path]:
    return sorted(comfy.output_dir.glob(f"{prefix}_*.png"))


def assert_exact(actual: Any, expected: Any, what: str) -> None:
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    )
    if not torch.equal(actual, expected):
        diff = (actual.double() - expected.double()).abs()
        raise AssertionError(
            f"{what}: not bit-exact ({int((diff > 0).sum())} values differ, max |diff| {float(diff.max()):.3g})"
        )


def gate_prompt(
    *,
    gate: str = "2",
    image: str | None = IMG_A,
    routes: int = 2,
    send_id: str = "",
    get_id: str = "",
    labels: str = "",
    saves: dict[int, str] | None = None,
) -> dict[str, Any]:
    """[LoadImage ->] ImageGate -> one SaveImage per entry of `saves` (route -> prefix)."""
    prompt: dict[str, Any] = {} if image is None else {"1": load_image(image)}
    wired = None if image is None else ["1", 0]
    prompt[gate] = api_prompts.gate(wired, send=send_id, get=get_id, routes=routes, labels=labels)
    for route, prefix in (saves or {}).items():
        prompt[f"9{route}"] = save_image([gate, route], prefix)
    return prompt


def choose(comfy, pause: dict[str, Any], route: int, node: str | None = None, token: str | None = None):
    return comfy.post(
        "/datasete_gate/choice",
        json={
            "node": pause["node"] if node is None else node,
            "token": pause["token"] if token is None else token,
            "route": route,
        },
    )


def run_until_pause(comfy, ws, prompt: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    since = ws.mark()
    prompt_id = comfy.queue(prompt, ws.client_id)
    pause = ws.wait_pause(prompt_id, timeout=ROUTE_TIMEOUT, since=since)
    return prompt_id, pause, since


def finish(comfy, ws, prompt_id: str, since: int, expect: str = "execution_success"):
    end = ws.wait_prompt_end(prompt_id, timeout=ROUTE_TIMEOUT, since=since)
    assert end["type"] == expect, f"prompt ended with {end['type']}: {end['data']}"
    return end["data"], comfy.wait_history(prompt_id)


def run_plain(comfy, ws, prompt: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """Queue a prompt that never pauses and wait for its success."""
    since = ws.mark()
    prompt_id = comfy.queue(prompt, ws.client_id)
    end = ws.wait_prompt_end(prompt_id, timeout=ROUTE_TIMEOUT, since=since)
    assert end["type"] == "execution_success", f"{end['type']}: {end['data']}"
    assert not ws.find(PAUSE, lambda d: d.get("prompt_id") == prompt_id, since=since)
    return prompt_id, since, comfy.wait_history(prompt_id)


def started_nodes(ws, prompt_id: str, since: int) -> set[str]:
    """Nodes ComfyUI announced with `executing`: it announces a blocked node too, just before
    it finds the blocker in the node's inputs, so this proves a node was not cached, not that
    it ran."""
    return {
        d["node"]
        for d in ws.find(
            "executing", lambda d: d.get("prompt_id") == prompt_id and d.get("node") is not None, since=since
        )
    }


def executed_nodes(ws, prompt_id: str, since: int) -> set[str]:
    """Nodes that ran and returned UI output (`executed`); blocked nodes never send it."""
    return {d["node"] for d in ws.find("executed", lambda d: d.get("prompt_id") == prompt_id, since=since)}


def publish_e2e_slot(comfy, ws) -> dict[str, Any]:
    """Test 1's flow: LoadImage -> gate(send_id=e2e_slot) -> route 2. Returns the pause."""
    prompt = gate_prompt(send_id="e2e_slot", labels="keep, drop", saves={1: "branch1", 2: "branch2"})
    prompt_id, pause, since = run_until_pause(comfy, ws, prompt)
    r = choose(comfy, pause, 2)
    assert r.status_code == 200, r.text
    finish(comfy, ws, prompt_id, since)
    return pause


# -- 1. choice routes one branch, publishes, and refuses stale clicks ------------------------


def test_choice_runs_only_the_chosen_branch_and_publishes(comfy, ws, images):
    prompt = gate_prompt(send_id="e2e_slot", labels="keep, drop", saves={1: "branch1", 2: "branch2"})
    with comfy.ws() as other_tab:  # the pause goes to the tab that queued, not to every tab
        prompt_id, pause, since = run_until_pause(comfy, ws, prompt)
        with pytest.raises(TimeoutError):
            other_tab.wait_for(PAUSE, timeout=0.5)

    assert pause["node"] == "2"
    assert pause["prompt_id"] == prompt_id
    assert (pause["routes"], pause["labels"]) == (2, ["keep", "drop"])
    assert (pause["batch"], pause["height"], pause["width"]) == (1, H, W)
    assert pause["source"] == "input"
    assert pause["token"]

    # A tab that reloads finds the pause again (both route spellings); other tabs (and a
    # request without a client id) see that it waits, but never its token.
    for path in ("/datasete_gate/pending", "/api/datasete_gate/pending"):
        listed = comfy.get(path, params={"client_id": ws.client_id}).json()["pending"]
        assert [(p["node"], p["token"]) for p in listed] == [("2", pause["token"])], path
    for other in (comfy.pending_gates("some-other-tab"), comfy.pending_gates()):
        assert [(p["node"], p["owner"], p["orphaned"]) for p in other] == [("2", "other", False)]
        assert "token" not in other[0]

    # The preview of the paused image is served, at the image size.
    r = comfy.get("/datasete_gate/preview", params={"node": "2", "token": pause["token"]})
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (W, H)

    # Wrong token, wrong route: refused, and the gate keeps waiting.
    assert choose(comfy, pause, 2, token="not-the-token").status_code == 409
    assert choose(comfy, pause, 3).status_code == 400
    assert choose(comfy, pause, "2").status_code == 400
    assert len(comfy.pending_gates()) == 1

    r = choose(comfy, pause, 2)
    assert r.status_code == 200, r.text
    assert r.json() == {"node": "2", "route": 2, "routes": [2]}
    _end, history = finish(comfy, ws, prompt_id, since)

    assert saved(comfy, "branch2"), "route 2's SaveImage wrote nothing"
    assert not saved(comfy, "branch1"), "route 1's SaveImage ran although route 2 was chosen"
    assert history["status"]["status_str"] == "success" and history["status"]["completed"]
    assert "92" in history["outputs"] and "91" not in history["outputs"]
    ran = executed_nodes(ws, prompt_id, since)
    assert "92" in ran and "91" not in ran
    done = ws.find(DONE, lambda d: d.get("token") == pause["token"], since=since)
    assert [(d["node"], d["route"]) for d in done] == [("2", 2)]

    # The same click again (an old token) is refused, and nothing is pending any more.
    stale = choose(comfy, pause, 2)
    assert stale.status_code == 409, stale.text
    assert "error" in stale.json()
    assert comfy.pending_gates() == []

    # What passed was published to e2e_slot, with the decision in its metadata.
    slots = {s["id"]: s for s in comfy.get("/datasete_gate/bus/list").json()["slots"]}
    assert "e2e_slot" in slots, slots
    slot = slots["e2e_slot"]
    assert slot["meta"]["route"] == 2
    assert slot["meta"]["route_label"] == "drop"
    assert slot["meta"]["prompt_id"] == prompt_id
    assert slot["meta"]["node"] == "2"
    assert slot["image_shape"] == [1, H, W, 3] and slot["image_dtype"] == "float32"
    assert slot["error"] is None
    assert comfy.get(slot["thumb_url"]).status_code == 200


# -- 2. get_id resumes from the slot bit-exactly -------------------------------------------


def test_get_id_resumes_bit_exact(comfy, ws, images):
    if not (comfy.bus_dir / "e2e_slot" / "slot.safetensors").is_file():
        publish_e2e_slot(comfy, ws)  # test 1 did not run first (e.g. -k)
    ref_image, ref_mask = images[IMG_A]

    # LoadImage's own tensors, checkpointed unchanged (BusSave is a pass-through).
    run_plain(comfy, ws, {"1": load_image(IMG_A), "2": bus_save(["1", 0], "e2e_source", mask=["1", 1])})
    source = load_slot(comfy, "e2e_source")
    assert_exact(source["image"], ref_image, "BusSave(LoadImage) image vs PNG decode")
    assert_exact(source["mask"], ref_mask, "BusSave(LoadImage) mask vs 1 - alpha")

    # No image wired: the gate loads e2e_slot, pauses, and route 1 checkpoints what it got.
    prompt = gate_prompt(image=None, get_id="e2e_slot", saves={2: "t2_route2"})
    prompt["5"] = bus_save(["2", 1], "e2e_copy", mask=["2", 0])
    prompt_id, pause, since = run_until_pause(comfy, ws, prompt)
    assert pause["source"] == "slot:e2e_slot"
    assert (pause["batch"], pause["height"], pause["width"]) == (1, H, W)

    # Paint a mask at the gate: the PNG itself, whose alpha decodes as LoadImage's mask does.
    r = comfy.post(
        "/datasete_gate/mask",
        data={"node": pause["node"], "token": pause["token"]},
        files={"mask": ("mask.png", png_bytes(_rgba()), "image/png")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["painted"] == [-1]

    assert choose(comfy, pause, 1).status_code == 200
    finish(comfy, ws, prompt_id, since)
    assert not saved(comfy, "t2_route2")

    slot, copy = load_slot(comfy, "e2e_slot"), load_slot(comfy, "e2e_copy")
    assert_exact(slot["image"], source["image"], "gate-published image vs LoadImage's")
    assert_exact(copy["image"], slot["image"], "image after get_id + route 1 vs the slot")
    assert_exact(copy["image"], ref_image, "image after get_id + route 1 vs PNG decode")
    # The gate has no mask input, so the published slot carries zeros; the painted mask wins.
    assert_exact(slot["mask"], torch.zeros((1, H, W)), "e2e_slot mask")
    assert_exact(copy["mask"], ref_mask, "painted mask vs LoadImage's mask")
    assert_exact(copy["mask"], source["mask"], "painted mask vs BusSave(LoadImage) mask")

    info = comfy.get("/datasete_gate/bus/info/e2e_copy").json()
    assert info["meta"]["source"] == "bus_save" and info["meta"]["node"] == "5"
    # The downloadable tensors are the same bytes as the slot file.
    r = comfy.get("/datasete_gate/bus/tensors/e2e_copy")
    assert r.status_code == 200
    assert r.content == (comfy.bus_dir / "e2e_copy" / "slot.safetensors").read_bytes()


# -- 3. ComfyUI's Cancel and the gate's Stop -----------------------------------------------


def _assert_interrupted(comfy, ws, prompt_id: str, since: int, pause: dict[str, Any]) -> None:
    end = ws.wait_prompt_end(prompt_id, timeout=ROUTE_TIMEOUT, since=since)
    assert end["type"] == "execution_interrupted", f"{end['type']}: {end['data']}"
    assert end["data"]["node_id"] == pause["node"]
    assert end["data"]["node_type"] == "ImageGate"
    done = ws.find(DONE, lambda d: d.get("token") == pause["token"], since=since)
    assert [(d["node"], d["route"]) for d in done] == [(pause["node"], None)]
    history = comfy.wait_history(prompt_id)
    assert history["status"]["status_str"] == "error"
    assert "execution_interrupted" in [m[0] for m in history["status"]["messages"]]
    assert comfy.pending_gates() == []
    assert choose(comfy, pause, 1).status_code == 409, "a cancelled pause still took a choice"


@pytest.mark.parametrize("targeted", [False, True], ids=["global", "by_prompt_id"])
def test_comfy_cancel_interrupts_the_pause_and_the_next_prompt_runs(comfy, ws, images, targeted):
    """ComfyUI's Cancel: the toolbar posts {} and the queue panel posts {prompt_id}."""
    tag = "t3_" + ("pid" if targeted else "global")
    prompt_id, pause, since = run_until_pause(comfy, ws, gate_prompt(saves={1: f"{tag}_cancel"}))
    body = {"prompt_id": prompt_id} if targeted else {}
    assert comfy.post("/interrupt", json=body).status_code == 200
    _assert_interrupted(comfy, ws, prompt_id, since, pause)
    assert not saved(comfy, f"{tag}_cancel")

    prompt_id, pause2, since = run_until_pause(comfy, ws, gate_prompt(saves={1: f"{tag}_next"}))
    assert pause2["token"] != pause["token"]
    assert choose(comfy, pause2, 1).status_code == 200
    finish(comfy, ws, prompt_id, since)
    assert saved(comfy, f"{tag}_next")


def test_gate_stop_interrupts_the_prompt(comfy, ws, images):
    prompt_id, pause, since = run_until_pause(comfy, ws, gate_prompt(saves={1: "t3_stop"}))
    assert comfy.post("/datasete_gate/cancel", json={"node": pause["node"], "token": "wrong"}).status_code == 409
    r = comfy.post("/datasete_gate/cancel", json={"node": pause["node"], "token": pause["token"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"node": pause["node"], "stopped": True}
    _assert_interrupted(comfy, ws, prompt_id, since, pause)
    assert not saved(comfy, "t3_stop")
    assert comfy.post("/datasete_gate/cancel", json={"node": pause["node"], "token": pause["token"]}).status_code == 409

    # ComfyUI is not left interrupted: the next prompt runs.
    prompt_id, pause, since = run_until_pause(comfy, ws, gate_prompt(saves={2: "t3_after_stop"}))
    assert choose(comfy, pause, 2).status_code == 200
    finish(comfy, ws, prompt_id, since)
    assert saved(comfy, "t3_after_stop")


# -- 4. a missing slot is a silent no-op ---------------------------------------------------


def test_missing_slot_without_image_is_a_silent_noop(comfy, ws):
    prompt = gate_prompt(
        image=None, get_id="e2e_no_such_slot", send_id="e2e_never", saves={1: "t4_missing", 2: "t4_missing2"}
    )
    prompt_id, since, history = run_plain(comfy, ws, prompt)
    assert not ws.find((PAUSE, DONE), since=since)
    assert history["status"]["status_str"] == "success"
    assert not saved(comfy, "t4_missing") and not saved(comfy, "t4_missing2")
    assert "91" not in history["outputs"] and "92" not in history["outputs"]
    assert executed_nodes(ws, prompt_id, since).isdisjoint({"91", "92"})
    assert comfy.pending_gates() == []
    assert not (comfy.bus_dir / "e2e_never").exists()
    assert "e2e_no_such_slot" in comfy.log_tail(200), "the missing slot was not even logged"


def test_missing_slot_blocks_the_mask_output_too(comfy, ws):
    prompt = gate_prompt(image=None, get_id="e2e_no_such_slot_mask")
    prompt["3"] = {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}}
    prompt["4"] = save_image(["3", 0], "t4_mask")
    _prompt_id, _since, history = run_plain(comfy, ws, prompt)
    assert not saved(comfy, "t4_mask"), "a node fed by the no-op gate's mask output ran"
    assert "4" not in history["outputs"]


# -- 5. a gate inside a subgraph -----------------------------------------------------------


@pytest.mark.parametrize("gate_id", ["12:5", "12:34:5"])
def test_gate_inside_a_subgraph(comfy, ws, images, gate_id):
    """The frontend flattens subgraphs before /prompt: inner nodes get path ids "12:5"
    (nested: "12:34:5"), and that path is the gate's UNIQUE_ID. The API format takes the
    flattened graph as is, so this is what a gate inside a subgraph receives."""
    slot_id = "e2e_sub_" + gate_id.replace(":", "_")
    inner_save = gate_id.rsplit(":", 1)[0] + ":6"
    prompt = gate_prompt(gate=gate_id, send_id=slot_id, saves={2: f"t5_outer_{slot_id}"})
    prompt[inner_save] = save_image([gate_id, 1], f"t5_{slot_id}")
    prompt_id, pause, since = run_until_pause(comfy, ws, prompt)
    assert pause["node"] == gate_id
    assert [p["node"] for p in comfy.pending_gates()] == [gate_id]

    # parseInt-style ids ("12", "5") name no paused gate.
    for wrong in {gate_id.split(":")[0], gate_id.split(":")[-1]}:
        assert choose(comfy, pause, 1, node=wrong).status_code == 409, wrong

    assert choose(comfy, pause, 1).status_code == 200
    _, history = finish(comfy, ws, prompt_id, since)
    assert saved(comfy, f"t5_{slot_id}")
    assert not saved(comfy, f"t5_outer_{slot_id}")
    assert inner_save in history["outputs"]
    meta = comfy.get(f"/datasete_gate/bus/info/{slot_id}").json()["meta"]
    assert meta["node"] == gate_id and meta["route"] == 1


# -- 6. Bus Load re-runs only when its slot changes ----------------------------------------


def test_bus_load_reruns_only_when_the_slot_changes(comfy, ws, images):
    def publish(image: str) -> None:
        run_plain(comfy, ws, {"1": load_image(image), "2": bus_save(["1", 0], "e2e_fp", mask=["1", 1])})

    load = {"11": bus_load("e2e_fp"), "12": bus_save(["11", 0], "e2e_fp_out", mask=["11", 1])}

    def run_load() -> tuple[set[str], set[str]]:
        """(nodes reported cached, nodes that executed)"""
        prompt_id, since, _ = run_plain(comfy, ws, load)
        cached = ws.find("execution_cached", lambda d: d.get("prompt_id") == prompt_id, since)
        assert len(cached) == 1
        return set(cached[0]["nodes"]), started_nodes(ws, prompt_id, since)

    publish(IMG_A)
    cached, ran = run_load()
    assert "11" not in cached and {"11", "12"} <= ran
    assert_exact(load_slot(comfy, "e2e_fp_out")["image"], images[IMG_A][0], "first load")

    cached, ran = run_load()
    assert {"11", "12"} <= cached, f"unchanged slot re-ran Bus Load (cached: {cached})"
    assert ran.isdisjoint({"11", "12"}), f"unchanged slot re-ran {ran}"

    publish(IMG_B)
    cached, ran = run_load()
    assert "11" not in cached and {"11", "12"} <= ran, "a republished slot did not re-run"
    out = load_slot(comfy, "e2e_fp_out")
    assert_exact(out["image"], images[IMG_B][0], "load after republish")
    assert_exact(out["mask"], images[IMG_B][1], "mask after republish")


# -- 7. ComfyUI's origin guard covers the pack's write routes --------------------------------


def test_cross_origin_writes_to_the_pack_are_refused(comfy, ws):
    """A page on another site must not steer a paused gate or delete slots through the
    user's browser: ComfyUI's origin middleware answers 403 before our handlers run."""
    prompt_id, pause, since = run_until_pause(comfy, ws, gate_prompt(send_id="e2e_origin", saves={1: "t7_a"}))
    evil = {"Origin": "http://evil.example"}
    for path, body in [
        ("/datasete_gate/choice", {"node": pause["node"], "token": pause["token"], "route": 1}),
        ("/api/datasete_gate/cancel", {"node": pause["node"], "token": pause["token"]}),
        ("/datasete_gate/bus/e2e_slot/rename", {"to": "stolen"}),
    ]:
        assert comfy.post(path, json=body, headers=evil).status_code == 403, path
    assert [p["token"] for p in comfy.pending_gates(ws.client_id)] == [pause["token"]]  # still waiting
    resp = comfy.post("/datasete_gate/choice", json={"node": pause["node"], "token": pause["token"], "route": 1})
    assert resp.status_code == 200
    end = ws.wait_prompt_end(prompt_id, timeout=ROUTE_TIMEOUT, since=since)
    assert end["type"] == "execution_success"


# -- 8. a pause belongs to the tab that queued it --------------------------------------------


def test_take_over_follows_comfys_sockets_and_the_done_event_follows_the_owner(comfy, ws, images):
    """Through ComfyUI's own socket table: no take-over while the owner's socket is open; once
    it closes, another client takes over, the old token is dead and the done event reaches the
    new owner."""
    owner = comfy.ws()
    prompt_id = comfy.queue(gate_prompt(saves={1: "t8_a", 2: "t8_b"}), owner.client_id)
    pause = owner.wait_pause(prompt_id, timeout=ROUTE_TIMEOUT)
    take = {"node": pause["node"], "client_id": ws.client_id}
    refused = comfy.post("/datasete_gate/takeover", json=take)
    assert refused.status_code == 409 and "still open" in refused.json()["error"]
    owner.close()
    deadline = time.monotonic() + 10
    while not comfy.pending_gates(ws.client_id)[0]["orphaned"]:
        assert time.monotonic() < deadline, "the owner's closed socket still counts as open"
        time.sleep(0.1)
    since = ws.mark()
    taken = comfy.post("/datasete_gate/takeover", json=take)
    assert taken.status_code == 200, taken.text
    token = taken.json()["token"]
    stale = choose(comfy, pause, 1)
    assert stale.status_code == 409 and "taken over by another tab" in stale.json()["error"]
    assert choose(comfy, pause, 2, token=token).status_code == 200
    done = ws.wait_for(DONE, lambda d: d.get("token") == token, timeout=ROUTE_TIMEOUT, since=since)
    assert done["data"]["route"] == 2
    assert comfy.wait_history(prompt_id)["status"]["status_str"] == "success"  # (its events went to the closed tab)
    assert saved(comfy, "t8_b") and not saved(comfy, "t8_a")


def test_a_prompt_queued_without_a_client_id_is_announced_to_every_tab_without_its_token(comfy, ws, images):
    since = ws.mark()
    prompt_id = comfy.queue(gate_prompt(saves={1: "t8n_a"}))  # no client id: an API script
    pause = ws.wait_pause(prompt_id, timeout=ROUTE_TIMEOUT, since=since)
    assert "token" not in pause and pause["owner"] == "other" and pause["orphaned"] is True
    taken = comfy.post("/datasete_gate/takeover", json={"node": pause["node"], "client_id": ws.client_id})
    assert taken.status_code == 200, taken.text
    assert choose(comfy, pause, 1, token=taken.json()["token"]).status_code == 200
    assert comfy.wait_history(prompt_id)["status"]["status_str"] == "success"
    assert saved(comfy, "t8n_a")
