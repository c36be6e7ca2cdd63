"""One gate run without ComfyUI: source rules, mask precedence, routing and publish on pass."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import torch

from gates.bus.errors import SlotCorrupt
from gates.gate import run as gate
from gates.gate.parking import answer_text
from gates.gate.run import Hooks, compose_mask, parse_labels, resolve_source, run_gate
from gates.gate.seal import seal as gate_seal
from gates.gate.waiter import Waiter

PARK_SECRET = b"the test host's park secret, 32 bytes"


class Blocker:
    """Stands in for ExecutionBlocker(None)."""


class Interrupt(Exception):
    pass


class Host:
    """A fake host that answers the pause from another thread, as a click would."""

    def __init__(self, waiter: Waiter, answer=None, client_id: str | None = "tab-1"):
        self.waiter = waiter
        self.answer = answer  # callable(waiter, payload) run when the pause is announced
        self.client_id = client_id  # the tab that queued the prompt
        self.events: list[tuple[str, dict]] = []
        self.sent_to: list[str | None] = []  # the client id of each event (None = every tab)
        self.flag = threading.Event()
        self.park_secret: bytes | None = PARK_SECRET

    def notify(self, event: str, payload: dict, client_id: str | None) -> None:
        self.events.append((event, payload))
        self.sent_to.append(client_id)
        if event == gate.PAUSE_EVENT and self.answer:
            threading.Timer(0.01, self.answer, args=(self.waiter, payload)).start()

    def hooks(self) -> Hooks:
        return Hooks(
            interrupted=self.flag.is_set,
            notify=self.notify,
            blocker=Blocker,
            interrupt=Interrupt,
            prompt_id=lambda: "prompt-1",
            client_id=lambda: self.client_id,
            park_secret=lambda: self.park_secret,
        )


def choose(route, mask=None, index=None):
    """Answer the pause: one route (int) for every image, a list for each image, None = Stop."""

    def answer(waiter: Waiter, payload: dict) -> None:
        if mask is not None:
            waiter.set_mask(payload["node"], payload["token"], mask, index)
        if route is None:
            waiter.stop(payload["node"], payload["token"])
        elif isinstance(route, list):
            waiter.choose_each(payload["node"], payload["token"], route)
        else:
            waiter.choose(payload["node"], payload["token"], route)

    return answer


def run(store, host, **kw):
    args = dict(store=store, waiter=host.waiter, hooks=host.hooks(), node="12:5", routes=3, image=None)
    args.update(kw)
    return run_gate(**args)


def test_chosen_route_carries_the_batch_and_every_other_is_blocked(store):
    image = torch.rand(4, 8, 6, 3, dtype=torch.float16)
    host = Host(Waiter(), choose(3))
    out = run(store, host, image=image)
    assert len(out) == 1 + gate.MAX_ROUTES + 3
    assert out[3] is image
    assert isinstance(out[13], Blocker)  # no captions wired: the captions output is blocked
    blockers = [o for i, o in enumerate(out[1:11], start=1) if i != 3]
    assert all(isinstance(b, Blocker) for b in blockers)
    assert len({id(b) for b in blockers}) == len(blockers)  # each its own blocker
    assert out[0].shape == (4, 8, 6) and not out[0].any()


def test_pause_event_describes_the_run(store):
    host = Host(Waiter(), choose(1))
    run(store, host, image=torch.rand(2, 8, 6, 3), labels="keep, , redo")
    (event, payload), (done, result) = host.events
    assert event == gate.PAUSE_EVENT and done == gate.DONE_EVENT
    assert payload["node"] == "12:5" and payload["routes"] == 3 and payload["batch"] == 2
    assert payload["labels"] == ["keep", "2", "redo"]
    assert payload["prompt_id"] == "prompt-1" and payload["token"]
    assert result == {
        "node": "12:5",
        "token": payload["token"],
        "route": 1,
        "routes": [1, 1],
        "timed_out": False,
        "parked": None,
    }
    assert host.sent_to == ["tab-1", "tab-1"]  # only the tab that queued


def take_over_then_choose(route, client_id="tab-2"):
    """Another tab takes the pause over (its owner has gone) and answers with its new token."""

    def answer(waiter: Waiter, payload: dict) -> None:
        pending = waiter.take_over(payload["node"], client_id, connected=lambda _client: False)
        waiter.choose(payload["node"], pending.token, route)

    return answer


def test_after_a_take_over_the_done_event_goes_to_the_new_owner(store):
    host = Host(Waiter(), take_over_then_choose(2))
    out = run(store, host, image=torch.rand(1, 8, 6, 3))
    assert not isinstance(out[2], Blocker)
    (_, pause), (_, done) = host.events
    assert host.sent_to == ["tab-1", "tab-2"]
    assert done["route"] == 2 and done["token"] != pause["token"]  # the new owner's token


def test_a_pause_queued_without_a_tab_is_announced_to_every_tab_without_its_token(store):
    host = Host(Waiter(), take_over_then_choose(1), client_id=None)
    run(store, host, image=torch.rand(1, 8, 6, 3))
    (_, pause), (_, done) = host.events
    assert host.sent_to == [None, "tab-2"]
    assert "token" not in pause and pause["owner"] == "other" and pause["orphaned"] is True
    assert done["route"] == 1


def test_publish_on_pass_stores_image_mask_and_meta(store):
    image = torch.rand(2, 8, 6, 3, dtype=torch.bfloat16)
    painted = torch.ones(8, 6)
    host = Host(Waiter(), choose(2, mask=painted))
    out = run(store, host, image=image, send_id="cp1", labels="a,b,c")
    got, mask = store.load("cp1")
    assert torch.equal(got.view(torch.uint8), image.view(torch.uint8)) and got.dtype == torch.bfloat16
    assert torch.equal(mask, out[0]) and bool((mask == 1).all()) and mask.shape == (2, 8, 6)
    meta = store.info("cp1").meta
    assert meta == {
        "node": "12:5",
        "prompt_id": "prompt-1",
        "route": 2,
        "route_label": "b",
        "routes": [2, 2],
        "source": "input",
    }


def test_get_id_resumes_from_the_slot_bit_exactly(store):
    image = torch.rand(3, 8, 6, 3, dtype=torch.float16)
    saved_mask = torch.rand(3, 8, 6)
    store.publish("cp1", image, saved_mask)
    host = Host(Waiter(), choose(1))
    out = run(store, host, get_id=" cp1 ")
    assert torch.equal(out[1], image) and out[1].dtype == torch.float16
    assert torch.equal(out[0], saved_mask)  # the loaded mask, since nothing was painted
    assert host.events[0][1]["source"] == "slot:cp1"


def test_wired_image_wins_over_get_id(store):
    store.publish("cp1", torch.zeros(1, 8, 6, 3))
    wired = torch.ones(1, 8, 6, 3)
    host = Host(Waiter(), choose(1))
    out = run(store, host, image=wired, get_id="cp1")
    assert out[1] is wired and not out[0].any()


@pytest.mark.parametrize("get_id", ["", "   ", "missing"])
def test_nothing_to_gate_is_a_silent_no_op(store, get_id, caplog):
    host = Host(Waiter(), choose(1))
    with caplog.at_level(logging.WARNING, logger="dataset_gates"):
        out = run(store, host, get_id=get_id)
    assert host.events == []  # no pause
    assert all(isinstance(o, Blocker) for o in out)  # the mask too: nothing downstream runs
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == (1 if get_id == "missing" else 0)
    if warnings:
        assert "missing" in warnings[0].getMessage()


def test_bad_ids_fail_before_pausing(store):
    host = Host(Waiter(), choose(1))
    with pytest.raises(ValueError, match="letters, digits"):
        run(store, host, image=torch.rand(1, 4, 4, 3), send_id="../up")
    with pytest.raises(ValueError, match="letters, digits"):
        run(store, host, get_id="a/b")
    assert host.events == []


def test_corrupt_get_slot_raises_instead_of_skipping(store):
    store.publish("bad", torch.rand(1, 4, 4, 3))
    (store.slot_dir("bad") / "slot.safetensors").write_bytes(b"junk")
    with pytest.raises(SlotCorrupt):
        run(store, Host(Waiter(), choose(1)), get_id="bad")


def test_stop_raises_the_interrupt_and_publishes_nothing(store):
    host = Host(Waiter(), choose(None))
    with pytest.raises(Interrupt):
        run(store, host, image=torch.rand(1, 4, 4, 3), send_id="cp1")
    assert not store.exists("cp1")
    assert host.events[-1][1]["route"] is None


def test_cancel_while_paused_raises_the_interrupt(store):
    host = Host(Waiter())
    threading.Timer(0.05, host.flag.set).start()
    with pytest.raises(Interrupt):
        run(store, host, image=torch.rand(1, 4, 4, 3), send_id="cp1")
    assert not store.exists("cp1") and host.waiter.pending() == []


@pytest.mark.parametrize("routes", [0, 11])
def test_routes_out_of_range(store, routes):
    with pytest.raises(ValueError, match="1 to 10"):
        run(store, Host(Waiter()), image=torch.rand(1, 4, 4, 3), routes=routes)


# -- mask precedence -----------------------------------------------------------------------------


def test_painted_mask_beats_loaded_mask_and_is_resized():
    image = torch.zeros(2, 8, 6, 3)
    painted = torch.ones(4, 3)  # drawn on a half-size preview
    out = compose_mask({None: painted}, torch.zeros(2, 8, 6), image)
    assert out.shape == (2, 8, 6) and bool((out == 1).all())


def test_per_image_masks_override_the_shared_one():
    image = torch.zeros(3, 4, 4, 3)
    out = compose_mask({None: torch.full((4, 4), 0.5), 1: torch.ones(4, 4)}, None, image)
    assert torch.allclose(out[0], torch.full((4, 4), 0.5)) and bool((out[1] == 1).all())
    assert torch.allclose(out[2], torch.full((4, 4), 0.5))
    only_one = compose_mask({2: torch.ones(4, 4)}, None, image)
    assert not only_one[:2].any() and bool((only_one[2] == 1).all())


def test_loaded_mask_beats_zeros_and_keeps_its_dtype():
    loaded = torch.rand(1, 4, 4, dtype=torch.float16)
    out = compose_mask({}, loaded, torch.zeros(2, 4, 4, 3))
    assert out is loaded
    zeros = compose_mask({}, None, torch.zeros(2, 4, 4, 3))
    assert zeros.shape == (2, 4, 4) and zeros.dtype == torch.float32 and not zeros.any()


def test_parse_labels():
    assert parse_labels("", 2) == ["1", "2"]
    assert parse_labels("keep\nredo, x, y", 2) == ["keep", "redo"]


def test_resolve_source_rules(store):
    assert resolve_source(store, None, "") is None
    img = torch.zeros(1, 2, 2, 3)
    assert resolve_source(store, img, "whatever").image is img


def test_get_id_can_resume_an_older_version(store):
    from policy_files import write_policy

    from gates.bus.policy import Policy

    write_policy(store.root, Policy(keep=2))
    store.publish("cp1", torch.zeros(1, 4, 4, 3))
    store.publish("cp1", torch.ones(1, 4, 4, 3))
    out = run(store, Host(Waiter(), choose(1)), get_id="cp1@-1")
    assert not out[1].any()


def test_wired_mask_is_passed_on_and_published_unless_painted_over(store):
    image = torch.rand(2, 8, 6, 3)
    wired = torch.rand(2, 8, 6)
    out = run(store, Host(Waiter(), choose(1)), image=image, mask=wired, send_id="w")
    assert torch.equal(out[0], wired) and torch.equal(store.load("w")[1], wired)
    out = run(store, Host(Waiter(), choose(1, mask=torch.ones(8, 6))), image=image, mask=wired)
    assert bool((out[0] == 1).all())


def test_wired_mask_beats_the_slot_mask_on_resume(store):
    store.publish("cp", torch.rand(1, 4, 4, 3), torch.zeros(1, 4, 4))
    out = run(store, Host(Waiter(), choose(1)), get_id="cp", mask=torch.ones(1, 4, 4))
    assert bool((out[0] == 1).all())


def test_painted_uint8_mask_matches_comfyuis_alpha_convention_bit_for_bit():
    """LoadImage computes 1 - alpha/255 in float32; a mask painted at the gate must equal it."""
    alpha = torch.arange(256, dtype=torch.uint8).reshape(16, 16)
    comfy = 1.0 - torch.from_numpy(alpha.numpy().astype("float32") / 255.0)
    image = torch.zeros(1, 16, 16, 3)
    out = compose_mask({None: 255 - alpha}, None, image)
    assert torch.equal(out[0], comfy)


# -- per-image routes, decisions and latents ---------------------------------------------------


def test_each_route_carries_its_images_in_batch_order_bit_exactly(store):
    image = torch.rand(4, 8, 6, 3, dtype=torch.float16)
    wired_mask = torch.rand(4, 8, 6)
    host = Host(Waiter(), choose([1, 2, 1, 3]))
    out = run(store, host, image=image, mask=wired_mask)
    assert torch.equal(out[1], image[[0, 2]]) and out[1].dtype == torch.float16
    assert torch.equal(out[2], image[[1]]) and torch.equal(out[3], image[[3]])
    assert all(isinstance(o, Blocker) for o in out[4:11])  # a route with no image is blocked
    assert out[0] is wired_mask  # the mask output is the whole batch's, [B,H,W]
    decisions = out[11]
    assert decisions.routes == (1, 2, 1, 3) and decisions.indices(1) == [0, 2]
    assert isinstance(out[12], Blocker)  # no latent anywhere: blocked
    done = host.events[-1][1]
    assert done["routes"] == [1, 2, 1, 3] and done["route"] is None


def test_latent_rides_along_and_is_published_with_the_routes(store):
    image = torch.rand(3, 8, 8, 3)
    latent = {
        "samples": torch.randn(3, 4, 1, 1, dtype=torch.float16),
        "noise_mask": torch.rand(3, 1, 8, 8),
        "batch_index": [5, 6, 7],
    }
    out = run(
        store, Host(Waiter(), choose([2, 1, 2])), image=image, latent=latent, send_id="cp", labels="keep,fix,drop"
    )
    assert out[12] is latent
    data = store.read("cp")
    assert torch.equal(data.latent["samples"], latent["samples"])
    assert data.latent["samples"].dtype == torch.float16
    assert torch.equal(data.latent["noise_mask"], latent["noise_mask"])
    assert data.latent["batch_index"] == [5, 6, 7]
    assert data.meta["routes"] == [2, 1, 2]
    assert data.meta["route"] is None and data.meta["route_label"] is None


def test_get_id_resumes_the_latent_and_preselects_the_recorded_routes(store):
    image = torch.rand(3, 8, 8, 3)
    latent = {"samples": torch.randn(3, 4, 1, 1)}
    store.publish("cp", image, latent=latent, meta={"routes": [3, 1, 2]})
    host = Host(Waiter(), choose(1))
    out = run(store, host, get_id="cp")
    assert torch.equal(out[12]["samples"], latent["samples"])
    pause = host.events[0][1]
    assert pause["preselect"] == [3, 1, 2]
    assert pause["timeout"] == 0 and pause["deadline"] is None


@pytest.mark.parametrize("recorded", [[3, 1], [1, 2, 4], "1,2,3", None])
def test_no_preselect_when_the_record_does_not_fit(store, recorded):
    store.publish("cp", torch.rand(3, 4, 4, 3), meta={"routes": recorded})
    host = Host(Waiter(), choose(1))
    run(store, host, get_id="cp", routes=3)
    assert host.events[0][1]["preselect"] is None


def test_a_wired_latent_beats_the_slot_latent(store):
    store.publish("cp", torch.rand(1, 4, 4, 3), latent={"samples": torch.zeros(1, 4, 1, 1)})
    wired = {"samples": torch.ones(1, 4, 1, 1)}
    out = run(store, Host(Waiter(), choose(1)), get_id="cp", latent=wired)
    assert out[12] is wired


def test_a_no_op_gate_blocks_decisions_and_latent_too(store):
    out = run(store, Host(Waiter(), choose(1)), latent={"samples": torch.zeros(1, 4, 1, 1)})
    assert len(out) == 14 and all(isinstance(o, Blocker) for o in out)


# -- timeouts and parking ------------------------------------------------------------------------


def no_answer(waiter: Waiter, payload: dict) -> None:
    """Nobody clicks."""


def test_route_k_on_timeout_sends_every_image_to_k(store):
    image = torch.rand(3, 4, 4, 3)
    host = Host(Waiter(), no_answer)
    out = run(store, host, image=image, timeout=0.1, on_timeout="route 2", send_id="t")
    assert out[2] is image and all(isinstance(o, Blocker) for i, o in enumerate(out[1:11], 1) if i != 2)
    assert out[11].routes == (2, 2, 2)
    (_, pause), (_, done) = host.events
    assert pause["timeout"] == 0.1 and pause["on_timeout"] == "route 2" and pause["deadline"]
    assert done["route"] == 2 and done["timed_out"] is True and done["parked"] is None
    assert store.info("t").meta["routes"] == [2, 2, 2]


def test_stop_on_timeout_interrupts_and_publishes_nothing(store):
    host = Host(Waiter(), no_answer)
    with pytest.raises(Interrupt):
        run(store, host, image=torch.rand(1, 4, 4, 3), timeout=0.1, on_timeout="stop", send_id="t")
    assert not store.exists("t")
    assert host.events[-1][1] | {"token": None} == {
        "node": "12:5",
        "token": None,
        "route": None,
        "routes": None,
        "timed_out": True,
        "parked": None,
    }


def test_park_on_timeout_stores_the_batch_the_prompt_and_the_node_and_blocks_everything(store):
    image = torch.rand(2, 4, 4, 3, dtype=torch.float16)
    mask = torch.rand(2, 4, 4)
    latent = {"samples": torch.randn(2, 4, 1, 1)}
    prompt = {"12:5": {"class_type": "ImageGate", "inputs": {"routes": 3}}}
    host = Host(Waiter(), no_answer)
    out = run(store, host, image=image, mask=mask, latent=latent, timeout=0.1, prompt=prompt)
    assert len(out) == 14 and all(isinstance(o, Blocker) for o in out)
    slot_id = "parked-prompt1-12-5"
    data = store.read(slot_id)
    assert torch.equal(data.image, image) and data.image.dtype == torch.float16
    assert torch.equal(data.mask, mask) and torch.equal(data.latent["samples"], latent["samples"])
    seal = data.meta.pop("seal")
    assert data.meta == {"parked": True, "prompt": prompt, "node": "12:5", "prompt_id": "prompt-1", "source": "input"}
    assert seal == gate_seal(PARK_SECRET, slot_id, "12:5", prompt)  # what resume checks
    done = host.events[-1][1]
    assert done["parked"] == slot_id and done["timed_out"] is True and done["routes"] is None


def test_a_host_without_a_park_secret_parks_the_batch_unsealed_and_says_so(store, caplog):
    host = Host(Waiter(), no_answer)
    host.park_secret = None
    prompt = {"12:5": {"class_type": "ImageGate", "inputs": {"routes": 3}}}
    with caplog.at_level(logging.WARNING, logger="dataset_gates"):
        run(store, host, image=torch.rand(1, 4, 4, 3), timeout=0.1, prompt=prompt)
    meta = store.read("parked-prompt1-12-5").meta
    assert meta["parked"] is True and meta["prompt"] == prompt and "seal" not in meta
    assert "Resume will refuse" in caplog.text


def test_park_goes_to_send_id_when_there_is_one(store):
    host = Host(Waiter(), no_answer)
    run(store, host, image=torch.rand(1, 4, 4, 3), timeout=0.1, on_timeout="park", send_id="mine")
    assert store.info("mine").meta["parked"] is True
    assert host.events[-1][1]["parked"] == "mine"


def test_a_mask_painted_before_the_timeout_is_parked_with_the_batch(store):
    def paint(waiter: Waiter, payload: dict) -> None:
        pending = waiter.get(payload["node"], payload["token"])
        with waiter._lock:  # painting holds the countdown; here the mask lands without a hold
            pending._masks[None] = torch.full((4, 4), 255, dtype=torch.uint8)

    run(store, Host(Waiter(), paint), image=torch.rand(1, 4, 4, 3), timeout=0.2)
    assert bool((store.read("parked-prompt1-12-5").mask == 1).all())


def test_a_held_pause_does_not_time_out(store):
    now = [1000.0]  # the waiter's clock stands still until the hold, so a busy machine cannot expire it first

    def hold_then_choose(waiter: Waiter, payload: dict) -> None:
        waiter.hold(payload["node"], payload["token"])
        now[0] += 60  # far past the deadline
        threading.Timer(0.3, waiter.choose, args=(payload["node"], payload["token"], 1)).start()

    host = Host(Waiter(clock=lambda: now[0]), hold_then_choose)
    out = run(store, host, image=torch.rand(1, 4, 4, 3), timeout=0.1, on_timeout="stop")
    assert out[11].routes == (1,)


@pytest.mark.parametrize(
    "on_timeout, error",
    [("route 4", "only 3 route"), ("route 11", "one of"), ("wait", "one of"), ("Route 1", "one of")],
)
def test_a_bad_on_timeout_fails_before_pausing(store, on_timeout, error):
    host = Host(Waiter(), choose(1))
    with pytest.raises(ValueError, match=error):
        run(store, host, image=torch.rand(1, 4, 4, 3), timeout=5, on_timeout=on_timeout)
    assert host.events == []


def test_without_a_countdown_on_timeout_does_not_matter(store):
    out = run(store, Host(Waiter(), choose(1)), image=torch.rand(1, 4, 4, 3), routes=2, on_timeout="route 7")
    assert out[11].routes == (1,)


def test_a_negative_timeout_fails_before_pausing(store):
    with pytest.raises(ValueError, match="timeout"):
        run(store, Host(Waiter(), choose(1)), image=torch.rand(1, 4, 4, 3), timeout=-1)


def test_no_timeout_waits_however_long(store):
    host = Host(Waiter())
    threading.Timer(0.4, lambda: host.waiter.choose("12:5", host.waiter.paused()[0]["token"], 3)).start()
    out = run(store, host, image=torch.rand(1, 4, 4, 3), timeout=0, on_timeout="stop")
    assert out[11].routes == (3,) and host.events[0][1]["deadline"] is None


def test_a_prompt_too_large_to_keep_parks_the_batch_alone(store, caplog):
    from gates.bus.codec import MAX_HEADER_BYTES

    image = torch.rand(1, 4, 4, 3)
    prompt = {"1": {"class_type": "X", "inputs": {"blob": "x" * MAX_HEADER_BYTES}}}
    with caplog.at_level(logging.WARNING, logger="dataset_gates"):
        out = run(store, Host(Waiter(), no_answer), image=image, timeout=0.1, prompt=prompt)
    assert all(isinstance(o, Blocker) for o in out)
    data = store.read("parked-prompt1-12-5")
    assert torch.equal(data.image, image) and data.meta["parked"] is True and data.meta["prompt"] is None
    assert "too large" in caplog.text


def test_a_parked_prompt_drops_comfyuis_is_changed_keys_so_the_slot_lists_as_strict_json(store):
    """ComfyUI puts is_changed = [NaN] on a gate's prompt entry; kept, it made /bus/list
    unparsable for the browser (bare NaN). Resume does not need it."""
    prompt = {
        "12:5": {"class_type": "ImageGate", "inputs": {"routes": 2}, "is_changed": [float("nan")]},
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}, "is_changed": ["abc"]},
    }
    run(store, Host(Waiter(), no_answer), image=torch.rand(1, 4, 4, 3), timeout=0.1, prompt=prompt)
    meta = store.read("parked-prompt1-12-5").meta
    assert meta["prompt"] == {
        "12:5": {"class_type": "ImageGate", "inputs": {"routes": 2}},
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
    }
    json.dumps(meta, allow_nan=False)


# -- captions ------------------------------------------------------------------------------------


def choose_with_captions(routes, captions):
    """Answer with one route per image and the captions as the person left them."""

    def answer(waiter: Waiter, payload: dict) -> None:
        waiter.choose_each(payload["node"], payload["token"], routes, captions)

    return answer


def test_captions_are_shown_at_the_pause_and_leave_as_edited(store):
    image = torch.rand(3, 8, 6, 3, dtype=torch.float16)
    host = Host(Waiter(), choose_with_captions([1, 2, 1], ["a cat", "A DOG", "a bird\non a wire"]))
    out = run(store, host, image=image, captions=["a cat", "a dog", "a bird\non a wire"], send_id="cp")
    assert host.events[0][1]["captions"] == ["a cat", "a dog", "a bird\non a wire"]
    assert torch.equal(out[1].view(torch.int16), image[[0, 2]].view(torch.int16))  # images untouched
    assert out[13] == ["a cat", "A DOG", "a bird\non a wire"]  # the whole batch, in batch order
    decisions = out[11]
    assert decisions.captions == ("a cat", "A DOG", "a bird\non a wire")
    assert decisions.edited == (False, True, False)
    assert decisions.captions_of(decisions.indices(1)) == ["a cat", "a bird\non a wire"]
    meta = store.info("cp").meta
    assert meta["captions"] == ["a cat", "A DOG", "a bird\non a wire"]
    assert meta["captions_edited"] == [False, True, False]
    assert torch.equal(store.read("cp").image.view(torch.int16), image.view(torch.int16))


def test_an_answer_without_captions_keeps_the_batchs_own(store):
    host = Host(Waiter(), choose(2))
    out = run(store, host, image=torch.rand(2, 4, 4, 3), captions=["one caption for both"])
    assert host.events[0][1]["captions"] == ["one caption for both"] * 2  # one for all: shared
    assert out[13] == ["one caption for both"] * 2
    assert out[11].edited == (False, False)


def test_captions_that_do_not_fit_the_batch_fail_before_pausing(store):
    host = Host(Waiter(), choose(1))
    with pytest.raises(ValueError, match="2 for a batch of 3"):
        run(store, host, image=torch.rand(3, 4, 4, 3), captions=["a", "b"])
    assert host.events == []


def test_captions_recorded_in_a_slot_come_back_with_get_id(store):
    image = torch.rand(2, 4, 4, 3)
    store.publish("cp", image, meta={"captions": ["x", "y"], "captions_edited": [True, False]})
    host = Host(Waiter(), choose_with_captions([1, 1], ["x", "y2"]))
    out = run(store, host, get_id="cp")
    assert host.events[0][1]["captions"] == ["x", "y"]
    assert out[13] == ["x", "y2"]
    assert out[11].edited == (True, True)  # edited before it was published, and here
    wired = run(store, Host(Waiter(), choose(1)), get_id="cp", captions=["w"])
    assert wired[13] == ["w", "w"] and wired[11].edited == (False, False)  # wired captions win


def test_a_parked_batch_keeps_its_captions_and_a_resumed_gate_shows_them(store):
    host = Host(Waiter(), no_answer)
    run(store, host, image=torch.rand(2, 4, 4, 3), captions=["a", "b"], timeout=0.1)
    meta = store.read("parked-prompt1-12-5").meta
    assert meta["captions"] == ["a", "b"] and meta["captions_edited"] == [False, False]
    resumed = Host(Waiter(), choose(1))
    out = run(store, resumed, get_id="parked-prompt1-12-5")
    assert resumed.events[0][1]["captions"] == ["a", "b"] and out[13] == ["a", "b"]


def test_a_timeout_to_a_route_sends_the_captions_as_they_came(store):
    out = run(
        store,
        Host(Waiter(), no_answer),
        image=torch.rand(2, 4, 4, 3),
        captions=["a", "b"],
        timeout=0.1,
        on_timeout="route 2",
    )
    assert out[2] is not None and out[13] == ["a", "b"] and out[11].captions == ("a", "b")


def test_a_gate_without_captions_shows_and_records_none(store):
    host = Host(Waiter(), choose(1))
    out = run(store, host, image=torch.rand(1, 4, 4, 3), send_id="cp")
    assert host.events[0][1]["captions"] is None
    assert isinstance(out[13], Blocker) and out[11].captions is None and out[11].edited is None
    assert "captions" not in store.info("cp").meta


def test_an_answer_decided_before_the_run_routes_without_pausing_and_publishes(store):
    image = torch.rand(3, 8, 6, 3)
    store.publish("parked", image, meta={"parked": True})
    decided = answer_text([2, 1, 2], store.fingerprint("parked"))
    store.publish("parked", torch.rand(3, 8, 6, 3), meta={"parked": True})  # parked into again since
    host = Host(Waiter())  # nobody answers: a pause would wait forever
    with pytest.raises(ValueError, match="changed since its batch was decided"):
        run(store, host, get_id="parked", answer=decided)
    store.publish("parked", image, meta={"parked": True})
    decided = answer_text([2, 1, 2], store.fingerprint("parked"))
    out = run(store, host, get_id="parked", send_id="parked", answer=decided)
    assert host.events == []  # no pause, no done event
    assert torch.equal(out[1], image[[1]]) and torch.equal(out[2], image[[0, 2]])
    assert store.read("parked").meta["routes"] == [2, 1, 2]
    with pytest.raises(ValueError, match="one per batch image"):
        run(store, host, get_id="parked", answer='{"routes": [2]}')
