"""End-to-end: curating a batch in a real ComfyUI (see README.md here; skipped without COMFYUI_DIR).

A batch of four images (a 4-page RGBA TIFF: LoadImage makes it a batch with one mask per page)
and a LATENT of four (a .latent file that LoadLatent reads back exactly) go through a gate that
sends each image its own way; Gate Split cuts the matching masks and latents. Timeouts route,
stop, or park the run in a slot, and a parked run resumes from it.
"""

from __future__ import annotations

import time
from typing import Any

import api_prompts
import pytest
from api_prompts import bus_save, load_image, load_latent

# Importing test_gate_e2e skips this module as it skips itself (no COMFYUI_DIR, no numpy/torch/
# requests/websocket-client), and gives it the same optional modules.
from test_gate_e2e import (
    ROUTE_TIMEOUT,
    Image,
    _rgba,
    assert_exact,
    executed_nodes,
    load_image_reference,
    load_slot,
    np,
    safetensors_torch,
    started_nodes,
    torch,
)

from gates.bus.local.store import SlotStore

pytestmark = pytest.mark.e2e

PAUSE = "datasete_gate.pause"
DONE = "datasete_gate.done"
BATCH_IMAGE = "e2e_batch4.tiff"
BATCH_LATENT = "e2e_batch4.latent"


# -- a batch of four, with masks and a latent ---------------------------------------------------


def _frame(i: int) -> Any:
    """Four distinct RGBA pages; alpha differs too, so each image has its own mask."""
    arr = _rgba(flip=i % 2 == 1).astype(np.int32)
    arr[..., 0] = (arr[..., 0] + 61 * i) % 256
    arr[..., 3] = (arr[..., 3] + 53 * i) % 256
    return arr.astype(np.uint8)


@pytest.fixture
def batch(comfy) -> dict[str, Any]:
    """The TIFF and the .latent in ComfyUI's input folder; what LoadImage and LoadLatent make
    of them: image [4,H,W,3], mask [4,H,W], latent samples [4,4,3,5]."""
    frames = [_frame(i) for i in range(4)]
    path = comfy.input_dir / BATCH_IMAGE
    if not path.exists():
        pages = [Image.fromarray(f, "RGBA") for f in frames]
        pages[0].save(path, save_all=True, append_images=pages[1:])
    refs = [load_image_reference(f) for f in frames]
    samples = torch.randn(4, 4, 3, 5, generator=torch.Generator().manual_seed(7))
    latent_path = comfy.input_dir / BATCH_LATENT
    if not latent_path.exists():  # LoadLatent's format: latent_tensor, and a version marker
        safetensors_torch.save_file(
            {"latent_tensor": samples, "latent_format_version_0": torch.tensor([])}, str(latent_path)
        )
    return {"image": torch.cat([r[0] for r in refs]), "mask": torch.cat([r[1] for r in refs]), "latent": samples}


def sources(image: str = BATCH_IMAGE, latent: str = BATCH_LATENT) -> dict[str, Any]:
    return {"1": load_image(image), "3": load_latent(latent)}


def gate(routes: int, **inputs: Any) -> dict[str, Any]:
    """An Image Gate fed the batch: image and mask from LoadImage, latent from LoadLatent."""
    return api_prompts.gate(["1", 0], routes=routes, mask=["1", 1], latent=["3", 0], **inputs)


def queue_until_pause(comfy, ws, prompt: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    since = ws.mark()
    prompt_id = comfy.queue(prompt, ws.client_id)
    return prompt_id, ws.wait_pause(prompt_id, timeout=ROUTE_TIMEOUT, since=since), since


def ended(ws, prompt_id: str, since: int, expect: str = "execution_success") -> dict[str, Any]:
    end = ws.wait_prompt_end(prompt_id, timeout=ROUTE_TIMEOUT, since=since)
    assert end["type"] == expect, f"prompt ended with {end['type']}: {end['data']}"
    return end["data"]


def answer(comfy, pause: dict[str, Any], **body: Any):
    r = comfy.post("/datasete_gate/choice", json={"node": pause["node"], "token": pause["token"], **body})
    assert r.status_code == 200, r.text
    return r.json()


def slot_exists(comfy, slot_id: str) -> bool:
    return (comfy.bus_dir / slot_id / "slot.safetensors").is_file()


def meta(comfy, slot_id: str) -> dict[str, Any]:
    r = comfy.get(f"/datasete_gate/bus/info/{slot_id}")
    assert r.status_code == 200, r.text
    return r.json()["meta"]


# -- 1. a route per image -----------------------------------------------------------------------


def test_each_image_goes_down_its_own_route_and_gate_split_cuts_masks_and_latents(comfy, ws, batch):
    prompt = sources()
    prompt["2"] = gate(4, send_id="e2e_cur_sent")
    for k in (1, 2, 3, 4):  # route k's images, and Gate Split's cut of everything for route k
        prompt[f"1{k}"] = bus_save(["2", k], f"e2e_cur_r{k}")
        prompt[f"2{k}"] = {
            "class_type": "DatasetGatesSplit",
            "inputs": {"decisions": ["2", 11], "route": k, "image": ["1", 0], "mask": ["2", 0], "latent": ["2", 12]},
        }
        prompt[f"3{k}"] = bus_save([f"2{k}", 0], f"e2e_cur_split{k}", mask=[f"2{k}", 1], latent=[f"2{k}", 2])
        prompt[f"4{k}"] = {"class_type": "PreviewAny", "inputs": {"source": [f"2{k}", 3]}}
        prompt[f"5{k}"] = {"class_type": "PreviewAny", "inputs": {"source": [f"2{k}", 4]}}
    prompt_id, pause, since = queue_until_pause(comfy, ws, prompt)
    assert (pause["batch"], pause["routes"], pause["preselect"]) == (4, 4, None)
    assert (pause["timeout"], pause["deadline"], pause["on_timeout"]) == (0, None, "park")

    bad = comfy.post("/datasete_gate/choice", json={"node": "2", "token": pause["token"], "routes": [1, 2, 1]})
    assert bad.status_code == 400  # one route per image, or nothing
    assert answer(comfy, pause, routes=[1, 2, 1, 3]) == {"node": "2", "routes": [1, 2, 1, 3], "route": None}
    ended(ws, prompt_id, since)
    history = comfy.wait_history(prompt_id)
    done = ws.find(DONE, lambda d: d.get("token") == pause["token"], since=since)
    assert [(d["routes"], d["route"]) for d in done] == [([1, 2, 1, 3], None)]

    picks = {1: [0, 2], 2: [1], 3: [3]}
    for k, idx in picks.items():
        route = load_slot(comfy, f"e2e_cur_r{k}")
        assert_exact(route["image"], batch["image"][idx], f"route {k} images")
        cut = load_slot(comfy, f"e2e_cur_split{k}")
        assert_exact(cut["image"], batch["image"][idx], f"Gate Split {k} image")
        assert_exact(cut["mask"], batch["mask"][idx], f"Gate Split {k} mask")
        assert_exact(cut["latent.samples"], batch["latent"][idx], f"Gate Split {k} latent")
        assert history["outputs"][f"4{k}"]["text"] == [",".join(map(str, idx))]
        assert history["outputs"][f"5{k}"]["text"] == [str(len(idx))]

    # Route 4 took no image: nothing fed by it (or by its split) ran.
    assert not slot_exists(comfy, "e2e_cur_r4") and not slot_exists(comfy, "e2e_cur_split4")
    assert executed_nodes(ws, prompt_id, since).isdisjoint({"14", "34", "44", "54"})

    # The published slot: the whole batch, the painted-or-wired mask, the latent, the routes.
    sent = load_slot(comfy, "e2e_cur_sent")
    assert_exact(sent["image"], batch["image"], "published batch")
    assert_exact(sent["mask"], batch["mask"], "published masks")
    assert_exact(sent["latent.samples"], batch["latent"], "published latent")
    recorded = meta(comfy, "e2e_cur_sent")
    assert (recorded["routes"], recorded["route"]) == ([1, 2, 1, 3], None)

    # A gate resuming from it pre-selects the routes, and gives the latent back.
    resume = {
        "2": {"class_type": "ImageGate", "inputs": {"routes": 4, "get_id": "e2e_cur_sent"}},
        "6": bus_save(["2", 1], "e2e_cur_resumed", latent=["2", 12]),
    }
    prompt_id, pause, since = queue_until_pause(comfy, ws, resume)
    assert pause["preselect"] == [1, 2, 1, 3] and pause["source"] == "slot:e2e_cur_sent"
    assert answer(comfy, pause, route=1)["routes"] == [1, 1, 1, 1]
    ended(ws, prompt_id, since)
    resumed = load_slot(comfy, "e2e_cur_resumed")
    assert_exact(resumed["image"], batch["image"], "resumed batch, all to route 1")
    assert_exact(resumed["latent.samples"], batch["latent"], "resumed latent")


# -- 2. timeouts ----------------------------------------------------------------------------------


def test_a_route_timeout_sends_every_image_down_that_route(comfy, ws, batch):
    prompt = sources()
    prompt["2"] = gate(2, timeout=2, on_timeout="route 2")
    prompt["11"] = bus_save(["2", 1], "e2e_to_r1")
    prompt["12"] = bus_save(["2", 2], "e2e_to_r2", latent=["2", 12])
    started = time.monotonic()
    prompt_id, pause, since = queue_until_pause(comfy, ws, prompt)
    assert pause["timeout"] == 2 and pause["on_timeout"] == "route 2"
    assert 0 < pause["deadline"] - time.time() <= 2.5
    ended(ws, prompt_id, since)
    assert time.monotonic() - started >= 1.9
    done = ws.find(DONE, lambda d: d.get("token") == pause["token"], since=since)
    assert [(d["route"], d["timed_out"], d["parked"]) for d in done] == [(2, True, None)]
    route2 = load_slot(comfy, "e2e_to_r2")
    assert_exact(route2["image"], batch["image"], "route 2 after the timeout")
    assert_exact(route2["latent.samples"], batch["latent"], "latent after the timeout")
    assert not slot_exists(comfy, "e2e_to_r1")
    late = comfy.post("/datasete_gate/choice", json={"node": "2", "token": pause["token"], "route": 1})
    assert late.status_code == 409


def test_a_stop_timeout_stops_the_run(comfy, ws, batch):
    prompt = sources()
    prompt["2"] = gate(2, timeout=2, on_timeout="stop", send_id="e2e_to_stop")
    prompt["11"] = bus_save(["2", 1], "e2e_to_stop_r1")
    prompt_id, pause, since = queue_until_pause(comfy, ws, prompt)
    data = ended(ws, prompt_id, since, expect="execution_interrupted")
    assert data["node_id"] == "2"
    done = ws.find(DONE, lambda d: d.get("token") == pause["token"], since=since)
    assert [(d["route"], d["timed_out"]) for d in done] == [(None, True)]
    assert not slot_exists(comfy, "e2e_to_stop") and not slot_exists(comfy, "e2e_to_stop_r1")
    assert comfy.pending_gates() == []


def test_hold_stops_the_countdown(comfy, ws, batch):
    prompt = sources()
    prompt["2"] = gate(2, timeout=1, on_timeout="stop")
    prompt["11"] = bus_save(["2", 1], "e2e_hold_r1")
    prompt_id, pause, since = queue_until_pause(comfy, ws, prompt)
    r = comfy.post("/datasete_gate/hold", json={"node": "2", "token": pause["token"]})
    assert r.status_code == 200 and r.json() == {"node": "2", "deadline": None}
    time.sleep(1.5)
    (waiting,) = comfy.pending_gates(ws.client_id)
    assert waiting["token"] == pause["token"] and waiting["deadline"] is None
    answer(comfy, pause, route=1)
    ended(ws, prompt_id, since)
    assert slot_exists(comfy, "e2e_hold_r1")


# -- 3. parking, and resuming a parked run ------------------------------------------------------


def test_park_on_timeout_then_resume_pauses_again_from_the_parked_slot(comfy, ws, batch):
    # Copies of the batch files, deleted once parked: had the resumed prompt still needed
    # LoadImage or LoadLatent, ComfyUI would refuse it (missing file) or recompute them.
    own = {"image": comfy.input_dir / "e2e_park.tiff", "latent": comfy.input_dir / "e2e_park.latent"}
    own["image"].write_bytes((comfy.input_dir / BATCH_IMAGE).read_bytes())
    own["latent"].write_bytes((comfy.input_dir / BATCH_LATENT).read_bytes())
    prompt = sources(own["image"].name, own["latent"].name)
    prompt["2"] = gate(2, timeout=2, on_timeout="park", labels="keep, fix")
    prompt["11"] = bus_save(["2", 1], "e2e_park_r1", latent=["2", 12])
    prompt["21"] = {
        "class_type": "DatasetGatesSplit",
        "inputs": {  # route 2's masks and latents
            "decisions": ["2", 11],
            "route": 2,
            "mask": ["2", 0],
            "latent": ["2", 12],
        },
    }
    prompt["22"] = bus_save(["2", 2], "e2e_park_r2", mask=["21", 1], latent=["21", 2])
    prompt_id, pause, since = queue_until_pause(comfy, ws, prompt)
    assert pause["on_timeout"] == "park" and pause["deadline"] is not None
    ended(ws, prompt_id, since)  # parking ends the prompt successfully ...
    assert comfy.wait_history(prompt_id)["status"]["status_str"] == "success"
    assert executed_nodes(ws, prompt_id, since).isdisjoint({"11", "21", "22"})  # ... all blocked
    assert not slot_exists(comfy, "e2e_park_r1") and not slot_exists(comfy, "e2e_park_r2")

    slot_id = f"parked-{prompt_id.replace('-', '')[:8]}-2"
    (done,) = ws.find(DONE, lambda d: d.get("token") == pause["token"], since=since)
    assert (done["parked"], done["timed_out"], done["routes"]) == (slot_id, True, None)
    parked = load_slot(comfy, slot_id)
    assert_exact(parked["image"], batch["image"], "parked batch")
    assert_exact(parked["mask"], batch["mask"], "parked masks")
    assert_exact(parked["latent.samples"], batch["latent"], "parked latent")
    recorded = meta(comfy, slot_id)
    assert recorded["parked"] is True and recorded["node"] == "2"
    assert recorded["prompt_id"] == prompt_id
    assert recorded["prompt"]["2"]["inputs"]["image"] == ["1", 0]  # the API prompt as queued
    assert recorded["seal"]["alg"] == "HMAC-SHA256"  # sealed by this ComfyUI: Resume trusts it
    plan = comfy.get(f"/datasete_gate/resume/{slot_id}")
    assert plan.status_code == 200 and plan.json()["count"] == len(prompt)
    assert {"class_type": "DatasetGatesSplit", "count": 1} in plan.json()["nodes"]
    listed = {s["id"]: s for s in comfy.get("/datasete_gate/bus/list").json()["slots"]}
    assert listed[slot_id]["meta"]["parked"] is True

    # Resume: queued for this tab, the gate pauses again at once from the parked slot.
    for path in own.values():
        path.unlink()
    assert comfy.post("/datasete_gate/resume/e2e_no_such_slot", json={}).status_code == 404
    assert comfy.post("/datasete_gate/resume/e2e_cur_sent", json={}).status_code in (404, 409)
    since = ws.mark()
    r = comfy.post(f"/datasete_gate/resume/{slot_id}", json={"client_id": ws.client_id})
    assert r.status_code == 200, r.text
    resumed_id = r.json()["prompt_id"]
    pause = ws.wait_pause(resumed_id, timeout=ROUTE_TIMEOUT, since=since)
    assert pause["source"] == f"slot:{slot_id}" and pause["batch"] == 4
    assert pause["labels"] == ["keep", "fix"] and pause["deadline"] is None  # no re-parking
    assert pause["token"]  # it reached the tab that clicked Resume
    assert started_nodes(ws, resumed_id, since).isdisjoint({"1", "3"})  # upstream not recomputed
    (running,) = [q for q in comfy.get("/queue").json()["queue_running"] if q[1] == resumed_id]
    gate_inputs = running[2]["2"]["inputs"]  # (number, prompt id, prompt, ...)
    assert "image" not in gate_inputs and "latent" not in gate_inputs
    assert (gate_inputs["get_id"], gate_inputs["timeout"]) == (slot_id, 0)

    answer(comfy, pause, routes=[2, 1, 2, 1])
    ended(ws, resumed_id, since)
    route1 = load_slot(comfy, "e2e_park_r1")
    assert_exact(route1["image"], batch["image"][[1, 3]], "route 1 after resume")
    assert_exact(route1["latent.samples"], batch["latent"], "whole latent after resume")
    cut = load_slot(comfy, "e2e_park_r2")
    assert_exact(cut["image"], batch["image"][[0, 2]], "route 2 after resume")
    assert_exact(cut["mask"], batch["mask"][[0, 2]], "route 2 masks after resume")
    assert_exact(cut["latent.samples"], batch["latent"][[0, 2]], "route 2 latent after resume")
    # Answering the resumed run replaced the parked slot with the decision: not parked any more.
    after = meta(comfy, slot_id)
    assert "parked" not in after and after["routes"] == [2, 1, 2, 1]
    assert comfy.post(f"/datasete_gate/resume/{slot_id}", json={}).status_code == 409


def park_a_run(comfy, ws, node: str, route_1_slot: str) -> tuple[dict[str, Any], str]:
    """Queue the batch through gate `node` (route 1 saved to `route_1_slot`), let its 1 s
    countdown park it: (the prompt, the parked slot's id)."""
    prompt = sources()
    prompt[node] = gate(2, timeout=1, on_timeout="park")
    prompt[f"{node}1"] = bus_save([node, 1], route_1_slot)
    prompt_id, _, since = queue_until_pause(comfy, ws, prompt)
    ended(ws, prompt_id, since)
    return prompt, f"parked-{prompt_id.replace('-', '')[:8]}-{node.replace(':', '-')}"


def test_a_planted_parked_slot_is_refused_and_its_nodes_do_not_run(comfy, ws, batch):
    """Someone who can only write files into the bus plants "parked" slots whose prompt saves
    over another slot: one without a seal, and a run this ComfyUI parked with one node added.
    Resume refuses both (403, naming why) and queues nothing; the run as it was parked still
    resumes."""
    _, own = park_a_run(comfy, ws, "2", "e2e_own_r1")
    genuine = meta(comfy, own)

    store = SlotStore(comfy.bus_dir)  # what a planter with write access to the bus can do
    parked = store.read(own)
    victim = "e2e_planted_victim"
    store.publish(victim, torch.zeros(1, 4, 4, 3))
    planted_prompt = {**genuine["prompt"], "66": bus_save(["1", 0], victim)}
    unsealed = {k: v for k, v in genuine.items() if k != "seal"}
    plants = {
        "e2e_planted": ({**unsealed, "prompt": planted_prompt}, "unsigned"),
        own: ({**genuine, "prompt": planted_prompt}, "altered"),
    }
    history = len(comfy.get("/history").json())
    for slot_id, (planted, reason) in plants.items():
        store.publish(slot_id, parked.image, parked.mask, latent=parked.latent, meta=planted)
        plan = comfy.get(f"/datasete_gate/resume/{slot_id}")
        assert plan.status_code == 403 and plan.json()["reason"] == reason, plan.text
        r = comfy.post(f"/datasete_gate/resume/{slot_id}", json={"client_id": ws.client_id})
        assert r.status_code == 403 and r.json()["reason"] == reason, r.text
        assert "refused" in r.json()["error"] and slot_id in r.json()["error"]
    queue = comfy.get("/queue").json()
    assert queue["queue_running"] == [] and queue["queue_pending"] == []
    assert len(comfy.get("/history").json()) == history  # nothing was queued, so nothing ran
    assert torch.equal(store.read(victim).image, torch.zeros(1, 4, 4, 3))

    # The run as this ComfyUI parked it (its seal intact) still resumes.
    store.publish(own, parked.image, parked.mask, latent=parked.latent, meta=genuine)
    since = ws.mark()
    r = comfy.post(f"/datasete_gate/resume/{own}", json={"client_id": ws.client_id})
    assert r.status_code == 200, r.text
    pause = ws.wait_pause(r.json()["prompt_id"], timeout=ROUTE_TIMEOUT, since=since)
    answer(comfy, pause, route=1)
    ended(ws, r.json()["prompt_id"], since)
    assert_exact(load_slot(comfy, "e2e_own_r1")["image"], batch["image"], "the resumed run's route 1")


def test_park_goes_to_send_id_and_a_subgraph_node_id_becomes_a_slot_id(comfy, ws, batch):
    prompt, slot_id = park_a_run(comfy, ws, "12:5", "e2e_park_sub_r1")
    assert slot_id.endswith("-12-5") and meta(comfy, slot_id)["node"] == "12:5"

    prompt["12:5"] = gate(2, timeout=1, on_timeout="park", send_id="e2e_park_named")
    prompt_id, _pause, since = queue_until_pause(comfy, ws, prompt)
    ended(ws, prompt_id, since)
    assert meta(comfy, "e2e_park_named")["parked"] is True
    assert_exact(load_slot(comfy, "e2e_park_named")["image"], batch["image"], "parked to send_id")


def test_a_parked_batch_decided_in_the_browser_resumes_without_pausing(comfy, ws, batch):
    """POST /resume with routes (what the slot browser's "Decide here" sends): ComfyUI takes the
    gate's hidden `answer` input, the gate does not pause, and each image goes its own way."""
    _, slot_id = park_a_run(comfy, ws, "6", "e2e_decided_r1")
    assert meta(comfy, slot_id)["parked"] is True
    created = comfy.get(f"/datasete_gate/bus/info/{slot_id}").json()["created"]
    bad = comfy.post(f"/datasete_gate/resume/{slot_id}", json={"routes": [1, 2], "created": created})  # batch of 4
    assert bad.status_code == 400 and "one per batch image" in bad.json()["error"]
    since = ws.mark()
    body = {"client_id": ws.client_id, "routes": [2, 1, 2, 1], "created": created}
    r = comfy.post(f"/datasete_gate/resume/{slot_id}", json=body)
    assert r.status_code == 200, r.text
    resumed_id = r.json()["prompt_id"]
    ended(ws, resumed_id, since)
    assert not ws.find(PAUSE, lambda d: d.get("prompt_id") == resumed_id, since=since)  # no pause
    assert_exact(load_slot(comfy, "e2e_decided_r1")["image"], batch["image"][[1, 3]], "route 1, decided in advance")
    after = meta(comfy, slot_id)
    assert "parked" not in after and after["routes"] == [2, 1, 2, 1]
