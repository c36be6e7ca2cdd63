"""The nodes as ComfyUI sees them, through a stand-in for the ComfyUI modules they touch."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import sys
import threading
import types

import pytest
import torch
from aiohttp import web
from comfy_standin import REPO, ComfyStandIn, ExecutionBlocker, InterruptProcessingException


def answer_with(standin: ComfyStandIn, pack, route):
    """Click `route` (None = Stop) as soon as the pause event goes out."""
    waiter = pack.gates.gate.waiter.WAITER

    def on_send(event, data):
        if event == "datasete_gate.pause":
            act = (
                (lambda: waiter.stop(data["node"], data["token"]))
                if route is None
                else (lambda: waiter.choose(data["node"], data["token"], route))
            )
            threading.Timer(0.01, act).start()

    standin.server.on_send = on_send


def answer_each(standin: ComfyStandIn, pack, routes):
    """Answer the pause with one route per image, as soon as it goes out."""
    waiter = pack.gates.gate.waiter.WAITER

    def on_send(event, data):
        if event == "datasete_gate.pause":
            threading.Timer(0.01, lambda: waiter.choose_each(data["node"], data["token"], routes)).start()

    standin.server.on_send = on_send


def test_pack_exports_nodes_web_dir_and_routes(comfy):
    standin, pack = comfy
    assert set(pack.NODE_CLASS_MAPPINGS) == {
        "ImageGate",
        "DatasetGatesBusSave",
        "DatasetGatesBusLoad",
        "DatasetGatesSplit",
        "DatasetGatesCaptions",
        "DatasetGatesTextGate",
        "DatasetGatesDatasetLoad",
        "DatasetGatesBucketResize",
        "DatasetGatesDatasetSave",
    }
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["DatasetGatesDatasetLoad"] == "Dataset Load (Dataset Gates)"
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["DatasetGatesSplit"] == "Gate Split (Dataset Gates)"
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["DatasetGatesTextGate"] == "Text Gate (Manual Pass)"
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["ImageGate"] == "Image Gate (Manual Router)"
    assert pack.WEB_DIRECTORY == "./web"
    paths = {route.path for route in standin.server.routes if isinstance(route, web.RouteDef)}
    assert "/datasete_gate/bus/list" in paths and "/datasete_gate/choice" in paths


def test_image_gate_declares_the_seed_interface(comfy):
    _, pack = comfy
    gate = pack.NODE_CLASS_MAPPINGS["ImageGate"]
    types = gate.INPUT_TYPES()
    assert types["required"]["routes"][1] == {"default": 2, "min": 1, "max": 10}
    assert {"image", "send_id", "get_id"} <= set(types["optional"])
    assert types["hidden"]["unique_id"] == "UNIQUE_ID"
    assert gate.RETURN_TYPES == ("MASK",) + ("IMAGE",) * 10 + ("DG_DECISIONS", "LATENT", "DG_CAPTIONS")
    assert gate.RETURN_NAMES[1] == "route_1" and gate.RETURN_NAMES[10] == "route_10"
    assert gate.RETURN_NAMES[11:] == ("decisions", "latent", "captions")
    assert types["optional"]["captions"][0] == "DG_CAPTIONS"
    assert types["optional"]["latent"][0] == "LATENT"
    assert types["optional"]["timeout"] == (
        "INT",
        {"default": 0, "min": 0, "max": 604800, "tooltip": "seconds to wait for an answer; 0 = forever"},
    )
    assert types["optional"]["on_timeout"][0] == ["park", "stop"] + [f"route {k}" for k in range(1, 11)]
    assert types["optional"]["on_timeout"][1]["default"] == "park"
    assert types["hidden"]["prompt"] == "PROMPT"
    assert gate.CATEGORY == "Dataset Gates"
    assert math.isnan(gate.IS_CHANGED(routes=2))  # always pauses
    assert gate.VALIDATE_INPUTS(get_id="") is True
    assert "letters, digits" in gate.VALIDATE_INPUTS(get_id="../x")


def test_every_gate_input_but_the_ordering_ones_is_a_run_gate_keyword(comfy):
    """ImageGate.run passes its inputs on by name: an input run_gate does not take would fail
    every run, and a run_gate keyword no input feeds could never be set from ComfyUI."""
    _, pack = comfy
    gates = pack.gates
    declared = {name for group in pack.NODE_CLASS_MAPPINGS["ImageGate"].INPUT_TYPES().values() for name in group}
    taken = set(inspect.signature(gates.gate.run.run_gate).parameters) - {"store", "waiter", "hooks", "node"}
    assert declared - set(gates.comfy.ordering.AFTER_KEYS) - {"unique_id"} == taken


def test_gate_routes_publishes_and_targets_the_queuing_tab(comfy):
    standin, pack = comfy
    answer_with(standin, pack, 2)
    image = torch.rand(2, 8, 8, 3)
    out = pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(routes=3, unique_id="12:5", image=image, send_id="cp1")
    assert out[2] is image
    assert all(isinstance(o, ExecutionBlocker) and o.message is None for i, o in enumerate(out[1:11], 1) if i != 2)
    assert out[11].routes == (2, 2) and isinstance(out[12], ExecutionBlocker)  # no latent wired
    events = [(e, sid) for e, _, sid in standin.server.sent]
    assert events == [("datasete_gate.pause", "tab-1"), ("datasete_gate.done", "tab-1")]
    pause = standin.server.sent[0][1]
    assert pause["node"] == "12:5" and pause["prompt_id"] == "prompt-ctx"
    slot = standin.input_dir / "gate_bus" / "cp1" / "slot.safetensors"
    assert slot.is_file()


async def test_take_over_follows_comfys_open_sockets_and_done_goes_to_the_new_owner(comfy, aiohttp_client):
    standin, pack = comfy
    app = web.Application()
    app.add_routes(standin.server.routes)
    client = await aiohttp_client(app)
    standin.server.sockets["tab-1"] = types.SimpleNamespace(closed=False)
    paused = threading.Event()
    standin.server.on_send = lambda event, data: event == "datasete_gate.pause" and paused.set()
    gate = pack.NODE_CLASS_MAPPINGS["ImageGate"]()
    run = asyncio.get_running_loop().run_in_executor(
        None, lambda: gate.run(routes=2, unique_id="4", image=torch.rand(1, 4, 4, 3))
    )
    assert await asyncio.get_running_loop().run_in_executor(None, paused.wait, 5.0)
    take = {"node": "4", "client_id": "tab-2"}
    resp = await client.post("/datasete_gate/takeover", json=take)
    assert resp.status == 409  # tab-1's socket is open
    standin.server.sockets["tab-1"].closed = True  # closing, not yet removed
    resp = await client.post("/datasete_gate/takeover", json=take)
    assert resp.status == 200
    token = (await resp.json())["token"]
    resp = await client.post("/datasete_gate/choice", json={"node": "4", "token": token, "route": 1})
    assert resp.status == 200
    await asyncio.wait_for(run, 5.0)
    assert [(e, sid) for e, _, sid in standin.server.sent] == [
        ("datasete_gate.pause", "tab-1"),
        ("datasete_gate.done", "tab-2"),
    ]


def test_stop_raises_comfys_interrupt(comfy):
    standin, pack = comfy
    answer_with(standin, pack, None)
    with pytest.raises(InterruptProcessingException):
        pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(routes=2, unique_id="3", image=torch.rand(1, 4, 4, 3))


def test_global_cancel_interrupts_the_pause_and_clears_the_flag(comfy):
    standin, pack = comfy
    standin.server.on_send = lambda e, d: (
        e == "datasete_gate.pause" and threading.Timer(0.05, standin.interrupt_flag.set).start()
    )
    with pytest.raises(InterruptProcessingException):
        pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(routes=2, unique_id="3", image=torch.rand(1, 4, 4, 3))
    assert not standin.interrupt_flag.is_set()
    assert pack.gates.gate.waiter.WAITER.paused() == []


def test_slot_ids_fed_by_links_pass_queue_time_validation(comfy):
    """ComfyUI's validation passes None for a linked widget (e.g. from a primitive node)."""
    _, pack = comfy
    nodes = pack.NODE_CLASS_MAPPINGS
    assert nodes["ImageGate"].VALIDATE_INPUTS(get_id=None) is True
    assert nodes["DatasetGatesBusSave"].VALIDATE_INPUTS(slot_id=None) is True
    assert nodes["DatasetGatesBusLoad"].VALIDATE_INPUTS(slot_id=None) is True
    assert math.isnan(nodes["DatasetGatesBusLoad"].IS_CHANGED(slot_id=None))
    assert "required" in nodes["DatasetGatesBusSave"].VALIDATE_INPUTS(slot_id=" ")


def comfy_validation_details(node: type, inputs: dict[str, str]) -> list[str]:
    """The `details` of each error ComfyUI 0.8.0 (execution.validate_inputs) makes of what
    VALIDATE_INPUTS returns: one per argument it names that the prompt gives, "<input> - <error>"."""
    names = inspect.getfullargspec(node.VALIDATE_INPUTS).args[1:]
    given = {name: value for name, value in inputs.items() if name in names}
    result = node.VALIDATE_INPUTS(**given)
    return [] if result is True else [f"{name} - {result}" for name in given]


@pytest.mark.parametrize(
    "inputs, at_fault",
    [
        ({"get_id": "nul@-1", "send_id": "ok"}, ["get_id: ", "Windows reserves"]),
        ({"get_id": "", "send_id": "a/b"}, ["send_id: invalid slot id 'a/b'"]),
        ({"get_id": "", "send_id": "x" * 300}, ["send_id: invalid slot id 'xxx"]),
        ({"get_id": "", "send_id": "ok@-1"}, ["send_id: invalid slot id 'ok@-1'"]),  # a ref only reads
        ({"get_id": "../x", "send_id": "a b"}, ["get_id: invalid slot id '../x'", "send_id: invalid slot id 'a b'"]),
    ],
)
def test_gate_queue_time_errors_name_the_field_at_fault(comfy, inputs, at_fault):
    """A bad send_id once queued with HTTP 200 and failed only when the gate ran. ComfyUI
    repeats the error against every input VALIDATE_INPUTS names; each copy names the field."""
    _, pack = comfy
    gate = pack.NODE_CLASS_MAPPINGS["ImageGate"]
    details = comfy_validation_details(gate, {"routes": 2, "labels": "", **inputs})
    assert [d.split(" - ")[0] for d in details] == ["get_id", "send_id"]
    assert all(all(part in d for part in at_fault) for d in details)
    assert comfy_validation_details(gate, {"get_id": "a@-2", "send_id": "b", "routes": 2}) == []
    assert gate.VALIDATE_INPUTS(get_id=None, send_id=None) is True  # fed by links: checked when run


def test_bus_save_then_load_is_bit_exact_and_fingerprinted(comfy):
    _, pack = comfy
    save = pack.NODE_CLASS_MAPPINGS["DatasetGatesBusSave"]
    load = pack.NODE_CLASS_MAPPINGS["DatasetGatesBusLoad"]
    image = torch.rand(3, 8, 8, 3, dtype=torch.float16)
    mask = torch.rand(3, 8, 8)
    assert load.IS_CHANGED(slot_id="ck") == "missing"
    result = save().save(image=image, slot_id="ck", unique_id="4", mask=mask)
    assert result["result"][0] is image and "ck" in result["ui"]["text"][0]
    assert isinstance(result["result"][1], ExecutionBlocker)  # no latent given
    first = load.IS_CHANGED(slot_id="ck")
    assert load.IS_CHANGED(slot_id="ck") == first  # unchanged slot: cached
    got_image, got_mask, batch, latent = load().load(slot_id="ck")
    assert isinstance(latent, ExecutionBlocker)  # the slot holds no latent
    assert torch.equal(got_image, image) and got_image.dtype == torch.float16
    assert torch.equal(got_mask, mask) and batch == 3
    save().save(image=image + 1, slot_id="ck")
    assert load.IS_CHANGED(slot_id="ck") != first  # republished: re-runs
    assert save.OUTPUT_NODE is True
    assert save.VALIDATE_INPUTS(slot_id="") != True  # noqa: E712 - an error string
    assert "letters" in load.VALIDATE_INPUTS(slot_id="a/b")


def test_validation_accepts_version_refs_only_where_reading(comfy):
    standin, pack = comfy
    gate = pack.NODE_CLASS_MAPPINGS["ImageGate"]
    assert gate.VALIDATE_INPUTS(get_id="cp@-2") is True
    with pytest.raises(ValueError, match="invalid slot id 'cp@-2'"):  # a send_id is no ref
        gate().run(routes=2, unique_id="3", image=torch.rand(1, 4, 4, 3), send_id="cp@-2")
    assert standin.server.sent == []  # refused before the pause
    load = pack.NODE_CLASS_MAPPINGS["DatasetGatesBusLoad"]
    assert load.VALIDATE_INPUTS(slot_id="cp@-1") is True


# -- ordering inputs and the prompt handler ------------------------------------------------------


@pytest.mark.parametrize("name", ["ImageGate", "DatasetGatesBusSave", "DatasetGatesBusLoad"])
def test_every_node_declares_the_ordering_inputs_as_raw_links(comfy, name):
    """`after` is a visible optional socket of any type; the spares are hidden. rawLink makes
    ComfyUI pass the link itself, so a blocked upstream node does not block this one."""
    _, pack = comfy
    types = pack.NODE_CLASS_MAPPINGS[name].INPUT_TYPES()
    assert types["optional"]["after"][0] == "*"
    assert types["optional"]["after"][1]["rawLink"] is True
    for key in ("after_2", "after_3"):
        assert types["hidden"][key][0] == "*" and types["hidden"][key][1]["rawLink"] is True
    assert "after" not in types["required"] and "after" not in types["hidden"]


def test_the_ordering_module_knows_the_node_class_names(comfy):
    _, pack = comfy
    ordering = pack.gates.comfy.ordering
    assert {ordering.GATE, ordering.BUS_SAVE, ordering.BUS_LOAD} == set(pack.NODE_CLASS_MAPPINGS) - {
        "DatasetGatesSplit",
        "DatasetGatesCaptions",
        "DatasetGatesTextGate",
        "DatasetGatesDatasetLoad",
        "DatasetGatesBucketResize",
        "DatasetGatesDatasetSave",
    }  # these touch no slot


def test_nodes_take_ordering_links_as_keywords_and_ignore_them(comfy):
    standin, pack = comfy
    nodes = pack.NODE_CLASS_MAPPINGS
    link = {"after": ["5", 0], "after_2": ["6", 0], "after_3": ["7", 0]}
    image = torch.rand(1, 4, 4, 3)
    nodes["DatasetGatesBusSave"]().save(image=image, slot_id="ord", **link)
    fingerprint = nodes["DatasetGatesBusLoad"].IS_CHANGED(slot_id="ord")
    assert nodes["DatasetGatesBusLoad"].IS_CHANGED(slot_id="ord", **link) == fingerprint
    assert torch.equal(nodes["DatasetGatesBusLoad"]().load(slot_id="ord", **link)[0], image)
    answer_with(standin, pack, 1)
    out = nodes["ImageGate"]().run(routes=2, unique_id="3", image=image, **link)
    assert out[1] is image


def test_loading_the_pack_registers_the_ordering_handler(comfy):
    standin, pack = comfy
    assert standin.server.on_prompt_handlers == [pack.gates.comfy.ordering.on_prompt]
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
        "2": {"class_type": "ImageGate", "inputs": {"routes": 2, "image": ["1", 0], "send_id": "s", "get_id": ""}},
        "3": {"class_type": "ImageGate", "inputs": {"routes": 2, "get_id": "s"}},
    }
    out = standin.server.trigger_on_prompt({"prompt": prompt, "client_id": "tab-1"})
    assert out["prompt"]["3"]["inputs"]["after"] == ["2", 0]
    assert out["client_id"] == "tab-1"


# -- the pack installed twice ---------------------------------------------------------------------


def test_a_second_copy_of_the_pack_reuses_the_first_copys_routes_and_waiter(comfy, tmp_path, caplog):
    """Two folders in custom_nodes with the same pack: both import, ComfyUI keeps the last
    copy's node classes and aiohttp serves the first copy's routes. The second copy must not
    register routes again, and its nodes must pause in the waiter those routes answer."""
    standin, first = comfy
    nodes_dir = tmp_path / "custom_nodes"
    nodes_dir.mkdir()
    (nodes_dir / "dataset-gates-copy").symlink_to(REPO, target_is_directory=True)
    with caplog.at_level(logging.ERROR, logger="dataset_gates"):
        second = standin.load_pack("dataset_gates_pack_copy", nodes_dir / "dataset-gates-copy")
    assert second.gates.gate.waiter.WAITER is not first.gates.gate.waiter.WAITER  # two modules indeed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "installed twice" in errors[0]
    assert str(REPO) in errors[0] and str(nodes_dir / "dataset-gates-copy") in errors[0]
    paths = [r.path for r in standin.server.routes if isinstance(r, web.RouteDef)]
    assert paths.count("/datasete_gate/choice") == 1
    assert standin.server.on_prompt_handlers == [first.gates.comfy.ordering.on_prompt]
    assert first.WEB_DIRECTORY == "./web" and second.WEB_DIRECTORY is None
    assert second.gates.comfy.adapter.waiter() is first.gates.gate.waiter.WAITER

    answer_with(standin, first, 2)  # answered through the first copy's waiter: the routes'
    image = torch.rand(1, 4, 4, 3)
    out = second.NODE_CLASS_MAPPINGS["ImageGate"]().run(routes=2, unique_id="7", image=image)
    assert out[2] is image
    for name in [m for m in sys.modules if m.startswith("dataset_gates_pack_copy")]:
        del sys.modules[name]


async def test_the_first_copys_choice_route_answers_a_gate_of_the_second_copy(comfy, tmp_path, aiohttp_client):
    standin, _first = comfy
    (tmp_path / "copy").symlink_to(REPO, target_is_directory=True)
    second = standin.load_pack("dataset_gates_pack_copy2", tmp_path / "copy")
    app = web.Application()
    app.add_routes(standin.server.routes)
    client = await aiohttp_client(app)
    paused = threading.Event()
    standin.server.on_send = lambda event, data: event == "datasete_gate.pause" and paused.set()
    image = torch.rand(1, 4, 4, 3)
    result: list = []
    worker = threading.Thread(
        target=lambda: result.append(
            second.NODE_CLASS_MAPPINGS["ImageGate"]().run(routes=2, unique_id="8", image=image)
        )
    )
    worker.start()
    try:
        assert await asyncio.to_thread(paused.wait, 5)
        pause = standin.server.sent[-1][1]
        resp = await client.post("/datasete_gate/choice", json={"node": "8", "token": pause["token"], "route": 1})
        assert resp.status == 200, await resp.text()
    finally:
        worker.join(5)
        if worker.is_alive():  # the route did not answer: do not leave the thread waiting
            standin.interrupt_flag.set()
            worker.join(5)
    assert result and result[0][1] is image
    for name in [m for m in sys.modules if m.startswith("dataset_gates_pack_copy2")]:
        del sys.modules[name]


# -- Gate Split --------------------------------------------------------------------------------


def test_gate_split_declares_decisions_route_and_optional_batches(comfy):
    _, pack = comfy
    split = pack.NODE_CLASS_MAPPINGS["DatasetGatesSplit"]
    types = split.INPUT_TYPES()
    assert types["required"]["decisions"] == ("DG_DECISIONS",)
    assert types["required"]["route"][1] == {"default": 1, "min": 1, "max": 10}
    optional = {k: v[0] for k, v in types["optional"].items()}
    assert optional == {"image": "IMAGE", "mask": "MASK", "latent": "LATENT", "page": "DG_PAGE"}
    assert split.RETURN_TYPES == ("IMAGE", "MASK", "LATENT", "STRING", "INT", "DG_CAPTIONS", "DG_PAGE")
    assert split.RETURN_NAMES == ("image", "mask", "latent", "indices", "count", "captions", "page")
    assert split.CATEGORY == "Dataset Gates"


def test_gate_split_cuts_what_the_gate_decided(comfy):
    standin, pack = comfy
    answer_each(standin, pack, [1, 2, 1, 3])
    image = torch.rand(4, 8, 8, 3)
    mask = torch.rand(4, 8, 8)
    latent = {"samples": torch.randn(4, 4, 1, 1)}
    out = pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(routes=3, unique_id="2", image=image, mask=mask, latent=latent)
    assert torch.equal(out[1], image[[0, 2]]) and out[12] is latent
    split = pack.NODE_CLASS_MAPPINGS["DatasetGatesSplit"]()
    img, m, lat, indices, count, captions, page = split.split(out[11], 1, image=image, mask=out[0], latent=out[12])
    assert isinstance(captions, ExecutionBlocker)  # the gate had no captions
    assert isinstance(page, ExecutionBlocker)  # no page wired
    assert torch.equal(img, out[1]) and torch.equal(m, mask[[0, 2]])
    assert torch.equal(lat["samples"], latent["samples"][[0, 2]])
    assert (indices, count) == ("0,2", 2)
    assert split.split(out[11], 3, image=image)[3:5] == ("3", 1)


def test_gate_split_blocks_an_empty_route_and_unwired_inputs(comfy):
    _, pack = comfy
    decisions = pack.gates.gate.split.Decisions((1, 1))
    split = pack.NODE_CLASS_MAPPINGS["DatasetGatesSplit"]()
    empty = split.split(decisions, 2, image=torch.rand(2, 4, 4, 3))
    assert len(empty) == 7 and all(isinstance(o, ExecutionBlocker) for o in empty)
    image = torch.rand(2, 4, 4, 3)
    img, m, lat, indices, count, _, _ = split.split(decisions, 1, image=image)
    assert img is image and isinstance(m, ExecutionBlocker) and isinstance(lat, ExecutionBlocker)
    assert (indices, count) == ("0,1", 2)


def test_gate_split_shares_a_mask_and_latent_of_batch_1(comfy):
    _, pack = comfy
    decisions = pack.gates.gate.split.Decisions((2, 1, 2))
    mask = torch.rand(1, 4, 4)
    latent = {"samples": torch.randn(1, 4, 1, 1)}
    _, m, lat, *_ = pack.NODE_CLASS_MAPPINGS["DatasetGatesSplit"]().split(decisions, 2, mask=mask, latent=latent)
    assert m is mask and lat["samples"] is latent["samples"]


def test_a_gate_that_times_out_parks_the_run_with_the_prompt_it_was_given(comfy):
    _standin, pack = comfy
    prompt = {"2": {"class_type": "ImageGate", "inputs": {"routes": 2}}}
    image = torch.rand(1, 4, 4, 3)
    out = pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(routes=2, unique_id="2", image=image, timeout=1, prompt=prompt)
    assert all(isinstance(o, ExecutionBlocker) for o in out)
    slot = pack.gates.comfy.adapter.store().read("parked-promptct-2")  # "prompt-ctx"
    assert slot.meta["prompt"] == prompt and slot.meta["parked"] is True
    assert torch.equal(slot.image, image)


# -- resume queues through ComfyUI's machinery -------------------------------------------------


def park_here(pack, slot_id: str, prompt: dict, node: str = "2") -> None:
    """A run this ComfyUI parked in `slot_id`: sealed with its park secret, as the gate does."""
    adapter = pack.gates.comfy.adapter
    meta = pack.gates.gate.parking.parked_meta(prompt, node, "x", "input", slot_id, adapter._park_secret())
    adapter.store().publish(slot_id, torch.rand(1, 4, 4, 3), meta=meta)


PLANTED = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
    "2": {"class_type": "ImageGate", "inputs": {"routes": 2, "image": ["1", 0]}},
    "3": {"class_type": "DatasetGatesBusSave", "inputs": {"image": ["1", 0], "slot_id": "someone-elses"}},
}


@pytest.fixture
async def comfy_routes(comfy, aiohttp_client):
    standin, _ = comfy
    app = web.Application()
    app.add_routes(standin.server.routes)
    return await aiohttp_client(app)


def test_the_park_secret_is_made_in_comfyuis_user_directory_outside_the_bus(comfy):
    standin, pack = comfy
    prompt = {"2": {"class_type": "ImageGate", "inputs": {"routes": 2}}}
    pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(
        routes=2, unique_id="2", image=torch.rand(1, 4, 4, 3), timeout=0.1, prompt=prompt
    )
    secret_file = standin.user_dir / "__dataset_gates" / "park_secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret = secret_file.read_text().strip()
    bus = pack.gates.comfy.adapter.bus_root()
    assert all(secret.encode() not in f.read_bytes() for f in bus.rglob("*") if f.is_file())
    assert "seal" in pack.gates.comfy.adapter.store().info("parked-promptct-2").meta


@pytest.mark.parametrize(
    "how, reason",
    [
        ("unsealed", "unsigned"),  # written into the bus by hand
        ("sealed elsewhere", "foreign"),  # sealed with a key of the planter's own
        ("altered", "altered"),  # a genuine parked run with a node added
    ],
)
async def test_a_planted_parked_slot_is_refused_and_nothing_is_queued(comfy, comfy_routes, how, reason):
    standin, pack = comfy
    store = pack.gates.comfy.adapter.store()
    parked_meta = pack.gates.gate.parking.parked_meta
    if how == "unsealed":
        meta = {"parked": True, "prompt": PLANTED, "node": "2", "prompt_id": "x"}
    elif how == "sealed elsewhere":
        meta = parked_meta(PLANTED, "2", "x", "input", "parked-x-2", b"the planter's own key, 32 bytes..")
    else:
        park_here(pack, "parked-x-2", {k: PLANTED[k] for k in ("1", "2")})
        meta = dict(store.info("parked-x-2").meta, prompt=PLANTED)
    store.publish("parked-x-2", torch.rand(1, 4, 4, 3), meta=meta)
    for resp in (
        await comfy_routes.get("/datasete_gate/resume/parked-x-2"),
        await comfy_routes.post("/datasete_gate/resume/parked-x-2", json={"client_id": "tab-9"}),
    ):
        body = await resp.json()
        assert resp.status == 403 and body["reason"] == reason, body
        assert "refused" in body["error"] and "parked-x-2" in body["error"]
    assert standin.server.prompt_queue.items == []


async def test_resume_plan_names_what_will_run(comfy, comfy_routes):
    _, pack = comfy
    park_here(pack, "parked-x-2", PLANTED)
    resp = await comfy_routes.get("/datasete_gate/resume/parked-x-2")
    assert resp.status == 200
    assert await resp.json() == {
        "slot": "parked-x-2",
        "count": 3,
        "nodes": [
            {"class_type": "DatasetGatesBusSave", "count": 1},
            {"class_type": "ImageGate", "count": 1},
            {"class_type": "LoadImage", "count": 1},
        ],
        # what deciding the batch in the browser needs: the gate's routes and labels, the batch
        "routes": 2,
        "labels": ["1", "2"],
        "batch": 1,
        "worker": None,  # the stand-in server has no port: parked without a worker's name
    }
    assert (await comfy_routes.get("/datasete_gate/resume/nothing-here")).status == 404


async def test_workers_sharing_a_park_secret_resume_each_others_runs(comfy, comfy_routes, monkeypatch):
    standin, pack = comfy
    monkeypatch.setenv("DATASET_GATES_PARK_SECRET", "the farm's shared secret 0123")
    park_here(pack, "parked-x-2", PLANTED)
    assert not (standin.user_dir / "__dataset_gates").exists()  # the configured one, no file
    assert (await comfy_routes.get("/datasete_gate/resume/parked-x-2")).status == 200
    monkeypatch.setenv("DATASET_GATES_PARK_SECRET", "another farm's secret 456789")
    resp = await comfy_routes.post("/datasete_gate/resume/parked-x-2", json={})
    assert resp.status == 403 and (await resp.json())["reason"] == "foreign"
    assert standin.server.prompt_queue.items == []


async def test_resume_queues_like_post_prompt(comfy, aiohttp_client):
    """The on-prompt handlers (the pack's ordering) run, the prompt is validated, and it is put
    on ComfyUI's queue with the next number and the clicking tab's client id."""
    standin, pack = comfy
    app = web.Application()
    app.add_routes(standin.server.routes)
    client = await aiohttp_client(app)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
        "2": {
            "class_type": "ImageGate",
            "inputs": {"routes": 2, "image": ["1", 0], "send_id": "", "get_id": "", "timeout": 3},
        },
        "3": {"class_type": "DatasetGatesBusSave", "inputs": {"image": ["1", 0], "slot_id": "parked-x-2"}},
    }
    park_here(pack, "parked-x-2", prompt)
    standin.server.number = 7
    resp = await client.post("/datasete_gate/resume/parked-x-2", json={"client_id": "tab-9", "extra": "ignored"})
    assert resp.status == 200, await resp.text()
    prompt_id = (await resp.json())["prompt_id"]
    ((number, queued_id, queued, extra, outputs, sensitive),) = standin.server.prompt_queue.items
    assert (number, queued_id, outputs, sensitive) == (7, prompt_id, ["out"], {})
    assert standin.server.number == 8
    assert extra["client_id"] == "tab-9" and isinstance(extra["create_time"], int)
    assert standin.validated == (prompt_id, queued, None)
    gate = queued["2"]["inputs"]
    assert "image" not in gate and gate["get_id"] == "parked-x-2" and gate["timeout"] == 0
    assert gate["after"] == ["3", 0]  # the ordering handler ran: the slot's writer goes first


async def test_a_resumed_prompt_comfyui_refuses_is_400_with_its_node_errors(comfy, aiohttp_client):
    standin, pack = comfy
    app = web.Application()
    app.add_routes(standin.server.routes)
    client = await aiohttp_client(app)
    park_here(pack, "p", {"2": {"class_type": "ImageGate", "inputs": {"routes": 2}}})
    standin.validation = (
        False,
        {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
            "extra_info": {},
        },
        [],
        {"2": {"errors": ["x"]}},
    )
    resp = await client.post("/datasete_gate/resume/p", json={})
    body = await resp.json()
    assert resp.status == 400 and body == {
        "error": "Prompt outputs failed validation",
        "node_errors": {"2": {"errors": ["x"]}},
    }
    assert standin.server.prompt_queue.items == []


def test_bus_save_and_load_carry_a_latent_exactly(comfy):
    _, pack = comfy
    save = pack.NODE_CLASS_MAPPINGS["DatasetGatesBusSave"]
    load = pack.NODE_CLASS_MAPPINGS["DatasetGatesBusLoad"]
    assert save.INPUT_TYPES()["optional"]["latent"][0] == "LATENT"
    assert save.RETURN_TYPES == ("IMAGE", "LATENT") and save.RETURN_NAMES == ("image", "latent")
    assert load.RETURN_TYPES == ("IMAGE", "MASK", "INT", "LATENT")
    assert load.RETURN_NAMES == ("image", "mask", "batch_size", "latent")
    latent = {
        "samples": torch.randn(2, 4, 3, 5, dtype=torch.bfloat16),
        "noise_mask": torch.rand(2, 1, 24, 40),
        "batch_index": [3, 4],
    }
    image = torch.rand(2, 24, 40, 3)
    result = save().save(image=image, slot_id="lat", latent=latent)
    assert result["result"] == (image, latent) and "latent 2x4x3x5" in result["ui"]["text"][0]
    got_image, mask, batch, got = load().load(slot_id="lat")
    assert torch.equal(got_image, image) and batch == 2 and not mask.any()
    assert got["samples"].dtype == torch.bfloat16
    assert torch.equal(got["samples"].view(torch.int16), latent["samples"].view(torch.int16))
    assert torch.equal(got["noise_mask"], latent["noise_mask"]) and got["batch_index"] == [3, 4]


# -- captions and the Text Gate ------------------------------------------------------------------


def test_gate_split_gives_each_route_its_captions_as_they_left_the_gate(comfy):
    standin, pack = comfy
    waiter = pack.gates.gate.waiter.WAITER

    def on_send(event, data):
        if event == "datasete_gate.pause":
            answer = lambda: waiter.choose_each(data["node"], data["token"], [2, 1, 2], ["a", "B", "c!"])  # noqa: E731
            threading.Timer(0.01, answer).start()

    standin.server.on_send = on_send
    image = torch.rand(3, 4, 4, 3)
    captions = pack.NODE_CLASS_MAPPINGS["DatasetGatesCaptions"]().build("a\nb\nc\n", "one per line")[0]
    assert captions == ["a", "b", "c"]
    out = pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(routes=2, unique_id="5", image=image, captions=captions)
    assert out[13] == ["a", "B", "c!"]
    split = pack.NODE_CLASS_MAPPINGS["DatasetGatesSplit"]()
    assert split.split(out[11], 2, image=image)[3:6] == ("0,2", 2, ["a", "c!"])
    assert split.split(out[11], 1)[5] == ["B"]


def test_the_captions_node_makes_one_for_all_or_refuses_what_cannot_be_sent_back(comfy):
    _, pack = comfy
    node = pack.NODE_CLASS_MAPPINGS["DatasetGatesCaptions"]
    types = node.INPUT_TYPES()["required"]
    assert types["split"][0] == ["one per line", "one for all"] and types["text"][1]["multiline"] is True
    assert node.RETURN_TYPES == ("DG_CAPTIONS",) and node.RETURN_NAMES == ("captions",)
    assert node().build("a,\nb", "one for all") == (["a,\nb"],)
    with pytest.raises(ValueError, match="caption 2 is 70,000 bytes"):
        node().build("short\n" + "x" * 70_000, "one per line")


def test_text_gate_declares_a_string_in_and_out_and_an_any_signal(comfy):
    _, pack = comfy
    node = pack.NODE_CLASS_MAPPINGS["DatasetGatesTextGate"]
    types = node.INPUT_TYPES()
    assert types["required"]["text"] == ("STRING", {"forceInput": True})
    assert types["optional"]["signal"][0] == "*" and "rawLink" not in types["optional"]["signal"][1]
    assert types["optional"]["on_timeout"][0] == ["pass", "stop"]
    assert types["optional"]["timeout"][1]["default"] == 0
    assert node.RETURN_TYPES == ("STRING", "*") and node.RETURN_NAMES == ("text", "signal")
    assert math.isnan(node.IS_CHANGED(text=None))
    assert node.CATEGORY == "Dataset Gates"


def pass_text(standin: ComfyStandIn, pack, text: str | None):
    """Answer a Text Gate's pause with `text` (None = Stop) once it goes out."""
    waiter = pack.gates.gate.waiter.WAITER

    def on_send(event, data):
        if event == "datasete_gate.pause":
            assert data["kind"] == "text"
            act = waiter.stop if text is None else functools.partial(waiter.pass_text, text=text)
            threading.Timer(0.01, act, args=(data["node"], data["token"])).start()

    standin.server.on_send = on_send


def test_text_gate_pauses_with_its_text_and_passes_the_edit_and_the_signal(comfy):
    standin, pack = comfy
    pass_text(standin, pack, "a photo of a dog, edited")
    gate = pack.NODE_CLASS_MAPPINGS["DatasetGatesTextGate"]()
    signal = torch.rand(1, 2, 2, 3)
    text, out = gate.run(text="a photo of a dog", unique_id="8", signal=signal)
    assert text == "a photo of a dog, edited" and out is signal
    (event, pause, sid), (done, result, _) = standin.server.sent
    assert (event, sid, pause["text"], pause["node"]) == ("datasete_gate.pause", "tab-1", "a photo of a dog", "8")
    assert done == "datasete_gate.done" and result["route"] == 1
    assert gate.run(text="x", unique_id="8") == ("a photo of a dog, edited",) * 2  # no signal: the text


def test_text_gate_stop_and_a_countdown(comfy):
    standin, pack = comfy
    gate = pack.NODE_CLASS_MAPPINGS["DatasetGatesTextGate"]()
    pass_text(standin, pack, None)
    with pytest.raises(InterruptProcessingException):
        gate.run(text="x", unique_id="8")
    standin.server.on_send = lambda event, data: None  # nobody answers
    assert gate.run(text="as it came", unique_id="8", timeout=1) == ("as it came", "as it came")
    assert standin.server.sent[-1][1]["timed_out"] is True
    with pytest.raises(InterruptProcessingException):
        gate.run(text="x", unique_id="8", timeout=1, on_timeout="stop")
    with pytest.raises(ValueError, match="on_timeout must be one of pass, stop"):
        gate.run(text="x", unique_id="8", timeout=1, on_timeout="park")
