"""The waiter: answers wake the gate at once, stale answers change nothing, Cancel is noticed."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from gates.waiter import GateInterrupted, StaleRun, Waiter


def image(b: int = 1) -> torch.Tensor:
    return torch.zeros(b, 8, 8, 3)


def wait_in_thread(waiter: Waiter, pending, interrupted=lambda: False):
    out: dict = {}

    def run():
        try:
            out["decision"] = waiter.wait(pending, interrupted)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
        out["woke"] = time.perf_counter()

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_choice_wakes_the_gate_without_polling_delay():
    waiter = Waiter()
    pending = waiter.arm("7", image(), routes=3)
    # a poll interval of 10 s proves the wake-up comes from the answer, not the poll
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(d=waiter.wait(pending, lambda: False, poll_s=10.0)))
    t.start()
    time.sleep(0.05)
    waiter.choose("7", pending.token, 2)
    t.join(timeout=2.0)
    assert not t.is_alive(), "the gate did not wake on the choice"
    assert out["d"].route == 2
    assert waiter.pending() == []


def test_stale_token_is_refused_and_changes_nothing():
    waiter = Waiter()
    first = waiter.arm("7", image(), routes=2)
    second = waiter.arm("7", image(), routes=2)  # a newer run of the same node supersedes
    t, out = wait_in_thread(waiter, first)
    t.join(timeout=2.0)
    assert isinstance(out["error"], GateInterrupted)
    with pytest.raises(StaleRun):
        waiter.choose("7", first.token, 1)
    with pytest.raises(StaleRun):
        waiter.choose("8", second.token, 1)  # right token, wrong node
    with pytest.raises(StaleRun):
        waiter.stop("7", "forged")
    assert [p["token"] for p in waiter.pending()] == [second.token]
    t, out = wait_in_thread(waiter, second)
    waiter.choose("7", second.token, 1)
    t.join(timeout=2.0)
    assert out["decision"].route == 1


def test_second_click_after_an_answer_is_stale():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2)
    waiter.choose("1", pending.token, 1)
    with pytest.raises(StaleRun):
        waiter.choose("1", pending.token, 2)
    assert waiter.wait(pending, lambda: False).route == 1


@pytest.mark.parametrize("route", [0, 4, -1, "2", 2.0, True, None])
def test_route_out_of_range_is_a_value_error(route):
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=3)
    with pytest.raises(ValueError, match="1 to 3"):
        waiter.choose("1", pending.token, route)
    assert waiter.pending()[0]["token"] == pending.token  # still waiting


def test_stop_gives_no_route():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2)
    t, out = wait_in_thread(waiter, pending)
    waiter.stop("1", pending.token)
    t.join(timeout=2.0)
    assert out["decision"].route is None


def test_interrupt_flag_is_noticed_within_the_poll_interval():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2)
    flag = threading.Event()
    t, out = wait_in_thread(waiter, pending, interrupted=flag.is_set)
    time.sleep(0.05)
    set_at = time.perf_counter()
    flag.set()
    t.join(timeout=2.0)
    assert isinstance(out["error"], GateInterrupted)
    assert out["woke"] - set_at < 0.5
    assert waiter.pending() == []


def test_masks_are_handed_over_with_the_decision():
    waiter = Waiter()
    pending = waiter.arm("1", image(b=3), routes=2)
    waiter.set_mask("1", pending.token, torch.ones(4, 4))
    waiter.set_mask("1", pending.token, torch.zeros(4, 4), index=2)
    with pytest.raises(ValueError, match="0 to 2"):
        waiter.set_mask("1", pending.token, torch.ones(4, 4), index=3)
    assert waiter.pending()[0]["painted"] == [-1, 2]
    waiter.choose("1", pending.token, 2)
    decision = waiter.wait(pending, lambda: False)
    assert set(decision.masks) == {None, 2}


def test_clearing_masks():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2)
    waiter.set_mask("1", pending.token, torch.ones(4, 4))
    waiter.set_mask("1", pending.token, None)
    waiter.choose("1", pending.token, 1)
    assert waiter.wait(pending, lambda: False).masks == {}


def test_pending_filters_by_client_and_hides_tensors():
    waiter = Waiter()
    waiter.arm("1", image(b=2), routes=2, client_id="tab-a", labels=["keep", "drop"])
    waiter.arm("2", image(), routes=2, client_id="tab-b")
    mine = waiter.pending("tab-a")
    assert [p["node"] for p in mine] == ["1"]
    assert mine[0]["batch"] == 2 and mine[0]["labels"] == ["keep", "drop"]
    assert "image" not in mine[0]
    assert {p["node"] for p in waiter.pending()} == {"1", "2"}
