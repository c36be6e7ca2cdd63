"""End-to-end: a farm of two ComfyUIs on one S3 bucket (issue 22).

Two ComfyUI processes on this machine share one bus, `s3://<bucket>/bus` on moto's S3 server
(tests/moto_s3.py, on 127.0.0.1), and one park secret. A gate on the first (worker-a) parks a
run nobody answered; the second (worker-b) lists it in its sidebar, Resume queues it there, its
gate pauses in the second one's tab and is answered there; the answer lands in the slot the
first one reads, with the exact batch that was parked, and nothing else runs on the first.

Needs what the other e2e tests need (COMFYUI_DIR, COMFYUI_PYTHON, Chromium and playwright), and
the s3 bus's packages: obstore and moto[server] where pytest runs, obstore in ComfyUI's venv.
Without them it skips with the reason, or fails where DATASET_GATES_REQUIRE_E2E is set (CI).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

# Importing test_gate_e2e skips this module as it skips itself (no COMFYUI_DIR, no numpy, torch,
# requests or websocket-client); test_ui_e2e brings the browser, its tab helper and fixture.
from test_gate_e2e import (
    DONE,
    ROUTE_TIMEOUT,
    _rgba,
    assert_exact,
    executed_nodes,
    load_image_reference,
    png_bytes,
    safetensors_torch,
)
from test_ui_e2e import DECIDED, INPUT_IMAGE, SIDEBAR_BUTTON, Ui, chromium  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e

PARK_SECRET = "farm-e2e-park-secret-0123456789"  # the farm's shared secret: B checks A's seal with it
ROUTES = ["dg_farm_keep", "dg_farm_drop"]  # each route's SaveImage prefix


def _unavailable(reason: str) -> None:
    """Skip, or fail where the e2e tests are required (CI: DATASET_GATES_REQUIRE_E2E)."""
    if os.environ.get("DATASET_GATES_REQUIRE_E2E", "") not in ("", "0"):
        pytest.fail(f"{reason} (DATASET_GATES_REQUIRE_E2E is set)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def s3(request: pytest.FixtureRequest) -> Any:
    """moto's S3 server (the unit tests' session one), once the s3 bus can run on both sides:
    obstore and moto[server] here, obstore in ComfyUI's venv."""
    for module, package in (("obstore", "obstore"), ("moto.server", "moto[server]"), ("boto3", "boto3")):
        try:
            __import__(module)
        except ImportError:
            _unavailable(f'the farm e2e test needs {package} where pytest runs: pip install -e ".[test]"')
    python = os.environ.get("COMFYUI_PYTHON", "").strip()
    if python:
        probe = subprocess.run([python, "-c", "import obstore"], capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            _unavailable(f"ComfyUI's venv ({python}) has no obstore, which an s3:// bus needs: pip install obstore")
    return request.getfixturevalue("s3_server")


@pytest.fixture
def farm(s3, comfy_factory) -> Iterator[dict[str, Any]]:
    """Two ComfyUIs, worker-a and worker-b, on one fresh bucket, with the same park secret;
    their own ports, input, output and user folders."""
    s3.faults.clear()
    bucket = s3.bucket()
    env = s3.env(DATASET_GATES_BUS=f"s3://{bucket}/bus", DATASET_GATES_PARK_SECRET=PARK_SECRET)
    a = comfy_factory("farm_a", env={**env, "DATASET_GATES_WORKER": "worker-a"})
    b = comfy_factory("farm_b", env={**env, "DATASET_GATES_WORKER": "worker-b"})
    yield {"a": a, "b": b, "bucket": bucket}


def slot_tensors(server, slot_id: str) -> dict[str, Any]:
    """The slot's tensors as `server` serves its file (verified against its checksum first)."""
    r = server.get(f"/datasete_gate/bus/tensors/{slot_id}", timeout=30)
    assert r.status_code == 200, r.text
    return safetensors_torch.load(r.content)


def slot_meta(server, slot_id: str) -> dict[str, Any]:
    r = server.get(f"/datasete_gate/bus/info/{slot_id}")
    assert r.status_code == 200, r.text
    return r.json()["meta"]


def test_a_run_parked_on_one_worker_is_resumed_and_answered_on_the_other(farm, s3, chromium) -> None:
    a, b = farm["a"], farm["b"]
    # The same file name on both, different pictures: had worker-b recomputed LoadImage, the
    # slot would end up holding its picture, not the one worker-a parked.
    picture = _rgba()
    (a.input_dir / INPUT_IMAGE).write_bytes(png_bytes(picture))
    (b.input_dir / INPUT_IMAGE).write_bytes(png_bytes(_rgba(flip=True)))
    expected_image, _ = load_image_reference(picture)
    b.post("/settings", json={"Comfy.TutorialCompleted": True, "Comfy.VueNodes.Enabled": False}).raise_for_status()

    ui = Ui(b, chromium, "farm_resume_on_another_worker")
    try:
        # The workflow, built in worker-b's tab (a person has it open there), LoadImage -> gate ->
        # SaveImage per route; worker-a queues its API prompt, so the node ids match in both.
        ids = ui.build(ROUTES, labels="keep, drop", timeout=2, on_timeout="park")
        prompt = ui.page.evaluate("async () => (await app.graphToPrompt()).output")
        gate = str(ids["gate"])

        # -- worker-a: nobody answers, the 2 s countdown runs out and parks the run ----------
        with a.ws() as ws_a:
            since = ws_a.mark()
            prompt_id = a.queue(prompt, ws_a.client_id)
            pause = ws_a.wait_pause(prompt_id, timeout=ROUTE_TIMEOUT, since=since)
            assert (pause["timeout"], pause["on_timeout"]) == (2, "park") and pause["deadline"]
            done = ws_a.wait_for(DONE, lambda d: d.get("token") == pause["token"], timeout=ROUTE_TIMEOUT, since=since)[
                "data"
            ]
            end = ws_a.wait_prompt_end(prompt_id, timeout=ROUTE_TIMEOUT, since=since)
            assert end["type"] == "execution_success", end
            assert executed_nodes(ws_a, prompt_id, since).isdisjoint({str(n) for n in ids["saves"]})
        slot_id = f"parked-{prompt_id.replace('-', '')[:8]}-{gate}"
        assert (done["parked"], done["timed_out"], done["routes"]) == (slot_id, True, None)
        parked_meta = slot_meta(a, slot_id)
        assert parked_meta["parked"] is True and parked_meta["node"] == gate
        assert parked_meta["worker"] == "worker-a" and parked_meta["prompt_id"] == prompt_id
        assert parked_meta["seal"]["alg"] == "HMAC-SHA256"
        parked_image = slot_tensors(a, slot_id)["image"]
        assert_exact(parked_image, expected_image, "the batch worker-a parked")
        listed = {s["id"]: s for s in b.get("/datasete_gate/bus/list").json()["slots"]}
        assert listed[slot_id]["meta"]["worker"] == "worker-a"  # worker-b sees it, and who parked it
        keys = set(s3.keys(farm["bucket"]))
        assert keys and all(k.startswith("bus/") for k in keys), sorted(keys)
        assert not list(a.bus_dir.glob("*")), "worker-a wrote its local bus folder, not the bucket"

        # -- worker-b: its sidebar lists the parked run; Resume queues it in this tab ---------
        page = ui.page
        page.click(SIDEBAR_BUTTON)
        card = f".dg-browser .dg-card[data-slot-id='{slot_id}']"
        try:
            page.wait_for_selector(f"{card} .dg-parked-badge", timeout=30000)
            page.wait_for_function(
                "sel => { const i = document.querySelector(sel + ' img'); return i && i.complete && i.naturalWidth > 0 }",
                arg=card,
            )
        finally:
            ui.shot("sidebar_parked_run")
        page.click(card)
        page.wait_for_selector(".dg-browser .dg-resume:not([disabled])", timeout=30000)
        plan = page.inner_text(".dg-browser .dg-resume-plan")  # worker-b checked worker-a's seal
        assert plan.startswith("Resume will run ") and "ImageGate ×1" in plan, plan
        ui.shot("sidebar_parked_slot")
        asked: list[str] = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.click(".dg-browser .dg-resume")
        page.wait_for_function(
            "() => /Resumed as prompt \\S+: /.test(document.querySelector('.dg-resume-status')?.textContent)"
        )
        assert asked and asked[0].startswith(plan)
        resumed_id = page.inner_text(".dg-resume-status").split("Resumed as prompt ")[1].split(":")[0]

        # worker-b's gate pauses in worker-b's tab, on the batch from the bucket.
        again = ui.wait_paused()
        assert again["prompt_id"] == resumed_id != prompt_id
        assert again["source"] == f"slot:{slot_id}" and again["deadline"] is None and again["node"] == gate
        assert a.pending_gates() == [] and not a.queue_busy()
        page.wait_for_function(
            "() => document.querySelector('.dg-resume-status').textContent.includes('paused at its gate')"
        )
        ui.shot("sidebar_resumed")
        page.click(SIDEBAR_BUTTON)  # close the sidebar: it covers the node
        page.wait_for_selector(".dg-browser", state="hidden")
        page.click(".dg-route[data-route='2']")
        page.wait_for_selector(DECIDED)
        entry = b.wait_history(resumed_id)
        assert entry["status"]["status_str"] == "success"
        ui.shot("answered")
    finally:
        ui.close()

    # -- the answer is in the slot worker-a reads: the decision and the exact parked batch ----
    answered = slot_meta(a, slot_id)
    assert "parked" not in answered and answered["routes"] == [2], answered
    final_image = slot_tensors(a, slot_id)["image"]
    assert_exact(final_image, parked_image, "the slot after worker-b's answer")
    assert final_image.numpy().tobytes() == parked_image.numpy().tobytes()
    # Route 2's SaveImage ran on worker-b; on worker-a nothing but the parked prompt ever ran.
    assert len(sorted(b.output_dir.glob(f"{ROUTES[1]}_*.png"))) == 1
    assert not sorted(b.output_dir.glob(f"{ROUTES[0]}_*.png"))
    assert set(a.get("/history").json()) == {prompt_id}
    assert set(b.get("/history").json()) == {resumed_id}
    assert not a.queue_busy() and a.pending_gates() == []
    assert not [p for p in a.output_dir.rglob("*") if p.is_file()], "worker-a wrote outputs"
