"""End-to-end: slot-aware ordering, the `after` socket, queue-time errors and a doubly installed
pack, in a real ComfyUI (see README.md here; skipped without COMFYUI_DIR).

Within one prompt a reader of a slot (gate get_id with no image, Bus Load) must run after the
writers of that slot (gate send_id, Bus Save) and read what they published in this run. Every
run here publishes a different image, so a reader one run behind cannot pass a bit-exact check.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from api_prompts import bus_load, bus_save, gate, load_image

# Importing test_gate_e2e skips this module as it skips itself (no COMFYUI_DIR, no numpy/torch/
# requests/websocket-client), and gives it the same optional modules.
from test_gate_e2e import (
    ROUTE_TIMEOUT,
    _rgba,
    assert_exact,
    choose,
    load_image_reference,
    load_slot,
    png_bytes,
    run_plain,
)

pytestmark = pytest.mark.e2e

PAUSE = "datasete_gate.pause"
TERMINAL = ("execution_success", "execution_interrupted", "execution_error")
HASH_SEEDS = (0, 1, 2)  # under 0 and 1 ComfyUI 0.8.0 walks this file's Save -> Load test's
#                         output nodes Load-side first, under 2 Save-side first


# -- helpers -----------------------------------------------------------------------------------


def _variant(i: int) -> Any:
    """Three distinct RGBA images of the same size."""
    arr = _rgba(flip=i % 2 == 1)
    if i == 2:
        arr = arr.copy()
        arr[:, :, 0] = 255 - arr[:, :, 0]
    return arr


def put_images(comfy) -> list[tuple[str, Any, Any]]:
    """Three PNGs in this server's input folder: (name, image tensor, mask tensor) each."""
    out = []
    for i in range(3):
        name = f"e2e_order_{i}.png"
        arr = _variant(i)
        path = comfy.input_dir / name
        if not path.exists():
            path.write_bytes(png_bytes(arr))
        out.append((name, *load_image_reference(arr)))
    return out


def run_answering(
    comfy, ws, prompt: dict[str, Any], route: int = 1, expect: str = "execution_success"
) -> tuple[list[dict], dict[str, Any]]:
    """Queue, answer every pause with `route` as it comes; (pauses in order, history)."""
    since = ws.mark()
    prompt_id = comfy.queue(prompt, ws.client_id)
    pauses: list[dict] = []
    while True:
        e = ws.wait_for(
            (PAUSE, *TERMINAL), lambda d: d.get("prompt_id") == prompt_id, timeout=ROUTE_TIMEOUT, since=since
        )
        since = ws.events.index(e, since) + 1
        if e["type"] != PAUSE:
            break
        pauses.append(e["data"])
        assert choose(comfy, e["data"], route).status_code == 200
    assert e["type"] == expect, f"prompt ended with {e['type']}: {e['data']}"
    return pauses, comfy.wait_history(prompt_id)


def queued_prompt(history: dict[str, Any]) -> dict[str, Any]:
    """The prompt as ComfyUI ran it: after the pack's on-prompt rewrite."""
    return history["prompt"][2]


# -- 1. gate A publishes, gate B (not wired to A) reads it in the same prompt -------------------


def test_gate_b_passes_gate_a_s_image_of_the_same_run(comfy, ws):
    images = put_images(comfy)
    for run, (name, image, _) in enumerate(images):
        prompt = {
            "1": load_image(name),
            "2": gate(["1", 0], send="e2e_ab"),
            "91": {"class_type": "PreviewImage", "inputs": {"images": ["2", 1]}},
            "3": gate(get="e2e_ab"),
            "5": bus_save(["3", 1], "e2e_ab_out"),
        }
        pauses, history = run_answering(comfy, ws, prompt)
        assert [(p["node"], p["source"]) for p in pauses] == [("2", "input"), ("3", "slot:e2e_ab")], (
            f"run {run + 1}: B ran before A"
        )
        assert_exact(load_slot(comfy, "e2e_ab_out")["image"], image, f"run {run + 1}: B's image")
        assert queued_prompt(history)["3"]["inputs"]["after"] == ["2", 0]


# -- 2. Bus Save -> unconnected Bus Load, under several hash seeds -----------------------------


@pytest.mark.parametrize("seed", HASH_SEEDS)
def test_bus_load_reads_this_run_s_bus_save_under_any_hash_seed(comfy_factory, seed):
    server = comfy_factory(f"comfy_seed{seed}", env={"PYTHONHASHSEED": str(seed)})
    images = put_images(server)
    with server.ws() as ws:
        for run, (name, image, mask) in enumerate(images):
            run_plain(
                server,
                ws,
                {
                    "1": load_image(name),
                    "2": bus_save(["1", 0], "e2e_sl", mask=["1", 1]),
                    "3": bus_load("e2e_sl"),
                    "4": bus_save(["3", 0], "e2e_sl_out", mask=["3", 1]),
                },
            )
            out = load_slot(server, "e2e_sl_out")
            assert_exact(out["image"], image, f"seed {seed}, run {run + 1}: loaded image")
            assert_exact(out["mask"], mask, f"seed {seed}, run {run + 1}: loaded mask")


# -- 3. several writers: the last in order wins -------------------------------------------------


def test_several_writers_are_ordered_by_id_and_the_reader_gets_the_last(comfy, ws):
    images = put_images(comfy)
    prompt = {
        "1": load_image(images[0][0]),
        "2": load_image(images[1][0]),
        "10": bus_save(["2", 0], "e2e_multi"),
        "9": bus_save(["1", 0], "e2e_multi"),
        "11": bus_load("e2e_multi"),
        "12": bus_save(["11", 0], "e2e_multi_out"),
    }
    _, _, history = run_plain(comfy, ws, prompt)
    assert_exact(load_slot(comfy, "e2e_multi")["image"], images[1][1], "slot after the run")
    assert_exact(load_slot(comfy, "e2e_multi_out")["image"], images[1][1], "what the load read")
    ran = queued_prompt(history)
    assert ran["10"]["inputs"]["after"] == ["9", 0] and ran["11"]["inputs"]["after"] == ["10", 0]


# -- 4. a loop feeding the last result back reads the previous version ---------------------------


def test_feedback_loop_reads_the_previous_version(comfy, ws):
    images = put_images(comfy)
    run_plain(comfy, ws, {"1": load_image(images[0][0]), "2": bus_save(["1", 0], "e2e_loop")})  # the loop's start
    loop = {
        "3": bus_load("e2e_loop"),
        "4": {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}},
        "5": bus_save(["4", 0], "e2e_loop"),
        "6": bus_save(["3", 0], "e2e_loop_seen"),
    }
    for run in range(2):
        before = load_slot(comfy, "e2e_loop")["image"]
        _, _, history = run_plain(comfy, ws, loop)
        assert_exact(
            load_slot(comfy, "e2e_loop_seen")["image"],
            before,
            f"run {run + 1}: the loop's load did not read the previous version",
        )
        assert_exact(load_slot(comfy, "e2e_loop")["image"], 1.0 - before, f"run {run + 1}: the loop's save")
        assert "after" not in queued_prompt(history)["3"]["inputs"]  # no cycle made


# -- 5. inside subgraphs --------------------------------------------------------------------------


def test_reader_and_writer_inside_subgraphs_run_in_order(comfy, ws):
    """Subgraph nodes arrive flattened with path ids ("12:5", nested "12:34:7")."""
    images = put_images(comfy)
    for run, (name, image, _) in enumerate(images[:2]):
        prompt = {
            "1": load_image(name),
            "12:5": bus_save(["1", 0], "e2e_sub_order"),
            "12:34:7": gate(get="e2e_sub_order"),
            "12:34:8": bus_save(["12:34:7", 1], "e2e_sub_order_out"),
        }
        pauses, history = run_answering(comfy, ws, prompt)
        assert [p["node"] for p in pauses] == ["12:34:7"]
        assert_exact(load_slot(comfy, "e2e_sub_order_out")["image"], image, f"run {run + 1}")
        assert queued_prompt(history)["12:34:7"]["inputs"]["after"] == ["12:5", 0]


# -- 6. a writer that publishes nothing does not hold the reader back ----------------------------


def test_a_writer_that_publishes_nothing_leaves_the_reader_reading_the_slot_as_it_is(comfy, ws):
    images = put_images(comfy)
    run_plain(comfy, ws, {"1": load_image(images[2][0]), "2": bus_save(["1", 0], "e2e_quiet")})
    prompt = {
        "2": gate(send="e2e_quiet"),  # no image, no get_id: a silent no-op writer
        "4": gate(),  # another no-op gate: everything after it is blocked ...
        "5": bus_save(["4", 1], "e2e_quiet"),  # ... so this writer never runs
        "6": bus_load("e2e_quiet"),
        "7": bus_save(["6", 0], "e2e_quiet_out"),
    }
    _, _, history = run_plain(comfy, ws, prompt)
    assert_exact(load_slot(comfy, "e2e_quiet_out")["image"], images[2][1], "reader's image")
    assert "7" in history["outputs"] and "5" not in history["outputs"]
    assert queued_prompt(history)["6"]["inputs"]["after"] == ["5", 0]


# -- 7. the `after` socket: orders, passes nothing, is not blocked ----------------------------------


def test_after_socket_orders_and_a_blocked_upstream_does_not_block(comfy, ws):
    images = put_images(comfy)
    run_plain(comfy, ws, {"1": load_image(images[0][0]), "2": bus_save(["1", 0], "e2e_after")})
    # A blocked route of a no-op gate linked to `after`: the load still runs.
    prompt = {"4": gate(), "6": bus_load("e2e_after", after=["4", 1]), "7": bus_save(["6", 0], "e2e_after_out")}
    run_plain(comfy, ws, prompt)
    assert_exact(load_slot(comfy, "e2e_after_out")["image"], images[0][1], "after a blocked node")


def test_after_socket_orders_a_reader_the_pack_cannot_order(comfy, ws):
    """send_id fed by a primitive node is unknown at queue time, so the pack adds nothing;
    linking the reader's `after` to the gate makes it read this run's image every time."""
    images = put_images(comfy)
    for run, (name, image, _) in enumerate(images):
        prompt = {
            "1": load_image(name),
            "20": {"class_type": "PrimitiveString", "inputs": {"value": "e2e_prim"}},
            "2": gate(["1", 0], send=["20", 0]),
            "91": {"class_type": "PreviewImage", "inputs": {"images": ["2", 1]}},
            "3": bus_load("e2e_prim", after=["2", 0]),
            "4": bus_save(["3", 0], "e2e_prim_out"),
        }
        pauses, history = run_answering(comfy, ws, prompt)
        assert [p["node"] for p in pauses] == ["2"]
        assert_exact(load_slot(comfy, "e2e_prim_out")["image"], image, f"run {run + 1}")
        assert queued_prompt(history)["3"]["inputs"] == {"slot_id": "e2e_prim", "after": ["2", 0]}


def test_bus_load_reruns_when_a_node_it_runs_after_runs_again(comfy, ws):
    """Ordered after a gate (which always runs), Bus Load is not cached even though the slot
    did not change: here the gate is a no-op writer."""
    images = put_images(comfy)
    run_plain(comfy, ws, {"1": load_image(images[1][0]), "2": bus_save(["1", 0], "e2e_rerun")})
    prompt = {"2": gate(send="e2e_rerun"), "3": bus_load("e2e_rerun"), "4": bus_save(["3", 0], "e2e_rerun_out")}
    for run in range(3):
        prompt_id, since, _ = run_plain(comfy, ws, prompt)
        cached = ws.find("execution_cached", lambda d, p=prompt_id: d.get("prompt_id") == p, since)
        assert "3" not in cached[0]["nodes"], f"run {run + 1}: Bus Load was cached"
    assert_exact(load_slot(comfy, "e2e_rerun_out")["image"], images[1][1], "what the load read")


def test_a_user_linked_after_keeps_its_link_and_the_order_uses_a_hidden_input(comfy, ws):
    images = put_images(comfy)
    for run, (name, image, _) in enumerate(images[:2]):
        prompt = {
            "1": load_image(name),
            "8": load_image(images[2][0]),
            "2": bus_save(["1", 0], "e2e_after2"),
            "3": bus_load("e2e_after2", after=["8", 0]),
            "4": bus_save(["3", 0], "e2e_after2_out"),
        }
        _, _, history = run_plain(comfy, ws, prompt)
        assert_exact(load_slot(comfy, "e2e_after2_out")["image"], image, f"run {run + 1}")
        inputs = queued_prompt(history)["3"]["inputs"]
        assert inputs["after"] == ["8", 0] and inputs["after_2"] == ["2", 0]


# -- 8. queue-time errors: once, against the input at fault ------------------------------------------


@pytest.mark.parametrize(
    "send, get, at_fault",
    [
        ("e2e_fine", "nul@-1", "get_id: invalid slot id 'nul'"),
        ("a/b", "", "send_id: invalid slot id 'a/b'"),
        ("x" * 300, "", "send_id: invalid slot id 'xxx"),
    ],
    ids=["get_id", "send_id", "long send_id"],
)
def test_a_bad_slot_id_is_refused_at_queue_time_naming_the_field(comfy, send, get, at_fault):
    """A bad send_id once queued (HTTP 200) and failed when the gate ran. ComfyUI repeats the
    error against each input the check reads; every copy names the field at fault."""
    prompt = {"2": gate(send=send, get=get), "5": bus_save(["2", 1], "e2e_never_saved")}
    r = comfy.post("/prompt", json={"prompt": prompt})
    assert r.status_code == 400, r.text
    errors = r.json()["node_errors"]["2"]["errors"]
    assert sorted(e["extra_info"]["input_name"] for e in errors) == ["get_id", "send_id"]
    assert all(at_fault in e["details"] for e in errors), errors


# -- 9. the pack installed twice ------------------------------------------------------------------


def test_pack_installed_twice_still_answers_paused_gates(comfy_factory):
    """Both folders import; ComfyUI runs the last copy's nodes and serves the first copy's
    routes. Before the fix every answer was 409 and the run hung."""
    server = comfy_factory("comfy_twice", pack_names=("dataset_gates", "dataset_gates_copy"))
    images = put_images(server)
    with server.ws() as ws:
        for route in (1, 2):
            prompt = {
                "1": load_image(images[route][0]),
                "2": gate(["1", 0], send="e2e_twice"),
                "5": bus_save(["2", route], f"e2e_twice_{route}"),
            }
            pauses, _ = run_answering(server, ws, prompt, route=route)
            assert [p["node"] for p in pauses] == ["2"]
            assert_exact(load_slot(server, f"e2e_twice_{route}")["image"], images[route][1], f"route {route}")
    log = server.log_path.read_text(errors="replace")
    twice = [line for line in log.splitlines() if "installed twice" in line]
    assert len(twice) == 1, log[-3000:]
    assert set(re.findall(r"custom_nodes/(dataset_gates\w*)", twice[0])) == {"dataset_gates", "dataset_gates_copy"}, (
        twice[0]
    )
    ext = server.get("/extensions").json()
    assert sum("image_gate.js" in path for path in ext) == 1, ext
