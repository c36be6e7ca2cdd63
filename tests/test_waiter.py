"""The waiter: answers wake the gate at once, stale answers change nothing, Cancel is noticed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import torch

from gates.gate.waiter import Decision, GateInterrupted, OwnerConnected, StaleRun, Waiter


def image(b: int = 1) -> torch.Tensor:
    return torch.zeros(b, 8, 8, 3)


def wait_in_thread(waiter: Waiter, pending, interrupted=lambda: False):
    out: dict = {}

    def run():
        try:
            out["decision"] = waiter.wait(pending, interrupted)
        except BaseException as exc:
            out["error"] = exc
        out["woke"] = time.perf_counter()

    t = threading.Thread(target=run)
    t.start()
    return t, out


def woken_by(waiter: Waiter, pending, answer: Callable[..., object], *args: object) -> Decision:
    """The decision a gate waiting in another thread wakes with once `answer(*args)` runs."""
    t, out = wait_in_thread(waiter, pending)
    answer(*args)
    t.join(timeout=2.0)
    assert not t.is_alive(), "the gate did not wake on the answer"
    return out["decision"]


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
    assert waiter.paused() == []


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
    assert [p["token"] for p in waiter.paused()] == [second.token]
    assert woken_by(waiter, second, waiter.choose, "7", second.token, 1).route == 1


@pytest.mark.parametrize("token", ["\u00e9", "\u0442\u043e\u043a\u0435\u043d", "\ud800", "\x00"])
def test_a_token_that_is_not_ascii_is_just_a_wrong_token(token):
    waiter = Waiter()
    pending = waiter.arm("7", image(), routes=2)
    for answer in (waiter.hold, waiter.stop, waiter.get):
        with pytest.raises(StaleRun, match="no gate '7' is waiting with that token"):
            answer("7", token)
    with pytest.raises(StaleRun):
        waiter.choose("7", pending.token + token, 1)
    assert [p["token"] for p in waiter.paused()] == [pending.token]


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
    assert waiter.paused()[0]["token"] == pending.token  # still waiting


def test_stop_gives_no_route():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2)
    assert woken_by(waiter, pending, waiter.stop, "1", pending.token).route is None


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
    assert waiter.paused() == []


def test_masks_are_handed_over_with_the_decision():
    waiter = Waiter()
    pending = waiter.arm("1", image(b=3), routes=2)
    waiter.set_mask("1", pending.token, torch.ones(4, 4))
    waiter.set_mask("1", pending.token, torch.zeros(4, 4), index=2)
    with pytest.raises(ValueError, match="0 to 2"):
        waiter.set_mask("1", pending.token, torch.ones(4, 4), index=3)
    assert waiter.paused()[0]["painted"] == [-1, 2]
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


def test_pending_gives_tokens_to_the_owner_only_and_hides_tensors():
    waiter = Waiter()
    mine = waiter.arm("1", image(b=2), routes=2, client_id="tab-a", labels=["keep", "drop"])
    waiter.arm("2", image(), routes=2, client_id="tab-b")
    open_tabs = {"tab-a", "tab-b"}
    seen = {p["node"]: p for p in waiter.pending("tab-a", open_tabs.__contains__)}
    assert seen["1"]["token"] == mine.token and "owner" not in seen["1"]
    assert seen["1"]["batch"] == 2 and seen["1"]["labels"] == ["keep", "drop"]
    assert "image" not in seen["1"]
    assert "token" not in seen["2"]  # another tab's pause: seen, but not answerable
    assert seen["2"]["owner"] == "other" and seen["2"]["orphaned"] is False
    assert seen["2"]["routes"] == 2
    anonymous = waiter.pending(None, open_tabs.__contains__)
    assert {p["node"] for p in anonymous} == {"1", "2"}
    assert not any("token" in p for p in anonymous)  # no client id: nobody's owner
    assert all(p["owner"] == "other" for p in anonymous)


def test_a_pause_is_orphaned_when_its_owner_has_no_socket_or_there_is_no_owner():
    waiter = Waiter()
    waiter.arm("1", image(), routes=2, client_id="tab-a")
    waiter.arm("2", image(), routes=2)  # queued through the API without a client id
    seen = {p["node"]: p["orphaned"] for p in waiter.pending("tab-c", {"tab-a"}.__contains__)}
    assert seen == {"1": False, "2": True}
    seen = {p["node"]: p["orphaned"] for p in waiter.pending("tab-c", lambda _client: False)}
    assert seen == {"1": True, "2": True}


def test_the_owner_still_gets_its_pause_after_a_reload():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2, client_id="tab-a")
    # Between the old page's socket closing and the new one opening, the owner has no socket;
    # it reconnects with the same client id and gets the same token back.
    assert waiter.pending("tab-a", lambda _client: False)[0]["token"] == pending.token
    assert waiter.take_over("1", "tab-a", lambda _client: False).token == pending.token


def test_take_over_is_refused_while_the_owner_tab_is_open():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2, client_id="tab-a")
    with pytest.raises(OwnerConnected, match=r"another tab.*still open"):
        waiter.take_over("1", "tab-b", {"tab-a", "tab-b"}.__contains__)
    assert waiter.paused()[0]["token"] == pending.token  # nothing changed
    assert isinstance(OwnerConnected("x"), StaleRun)  # so the routes answer 409


def test_take_over_moves_the_pause_to_a_new_token_and_the_old_one_is_dead():
    waiter = Waiter()
    pending = waiter.arm("1", image(b=2), routes=2, client_id="tab-a")
    old = pending.token
    waiter.set_mask("1", old, torch.ones(4, 4))
    taken = waiter.take_over("1", "tab-b", lambda client: client == "tab-b")
    assert taken is pending and taken.token != old and taken.client_id == "tab-b"
    for answer in (
        lambda: waiter.choose("1", old, 1),
        lambda: waiter.stop("1", old),
        lambda: waiter.set_mask("1", old, None),
        lambda: waiter.get("1", old),
    ):
        with pytest.raises(StaleRun, match="taken over by another tab"):
            answer()
    # The old tab, should it come back, sees a pause of another tab; the new owner has it.
    back = waiter.pending("tab-a", lambda _client: True)[0]
    assert "token" not in back and back["owner"] == "other" and back["orphaned"] is False
    assert waiter.pending("tab-b")[0]["token"] == taken.token
    assert waiter.pending("tab-b")[0]["painted"] == [-1]  # the mask painted before stays
    assert woken_by(waiter, pending, waiter.choose, "1", taken.token, 2).route == 2


def test_anyone_may_take_over_a_pause_without_an_owner():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2)
    assert waiter.take_over("1", "tab-z", lambda _client: True).token == pending.token
    assert pending.client_id == "tab-z"
    with pytest.raises(OwnerConnected):  # tab-z owns it now and is open
        waiter.take_over("1", "tab-y", lambda _client: True)


@pytest.mark.parametrize(
    "node, client_id, error",
    [
        ("1", "", ValueError),
        ("1", None, ValueError),
        ("1", 7, ValueError),
        ("9", "tab-b", StaleRun),
        (["1"], "tab-b", StaleRun),
    ],
)
def test_take_over_needs_a_client_id_and_a_waiting_gate(node, client_id, error):
    waiter = Waiter()
    waiter.arm("1", image(), routes=2, client_id="tab-a")
    with pytest.raises(error):
        waiter.take_over(node, client_id, lambda _client: False)


def test_an_answered_pause_cannot_be_taken_over():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2, client_id="tab-a")
    waiter.choose("1", pending.token, 1)
    with pytest.raises(StaleRun, match="answered"):
        waiter.take_over("1", "tab-b", lambda _client: False)


def test_a_foreign_token_is_refused_with_a_message_that_says_why():
    waiter = Waiter()
    waiter.arm("1", image(), routes=2, client_id="tab-a")
    with pytest.raises(StaleRun, match="belongs to another tab"):
        waiter.choose("1", "a-token-from-somewhere-else", 1)


# -- per-image routes, countdown and hold ---------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_image_gets_its_own_route_and_the_list_is_checked():
    waiter = Waiter()
    pending = waiter.arm("1", image(4), routes=3)
    for bad in ([1, 2, 1], [1, 2, 1, 4], [1, 2, 1, 0], [1, 2, True, 1], [1, 2, "1", 1], "1,2,1,3", None):
        with pytest.raises(ValueError):
            waiter.choose_each("1", pending.token, bad)
    waiter.choose_each("1", pending.token, [1, 2, 1, 3])
    decision = waiter.wait(pending, lambda: False)
    assert decision.routes == [1, 2, 1, 3] and decision.route is None and not decision.timed_out


def test_one_route_means_every_image_goes_there():
    waiter = Waiter()
    pending = waiter.arm("1", image(3), routes=2)
    waiter.choose("1", pending.token, 2)
    decision = waiter.wait(pending, lambda: False)
    assert decision.routes == [2, 2, 2] and decision.route == 2


def test_the_countdown_answers_with_a_timeout_and_a_late_click_is_refused():
    clock = Clock()
    waiter = Waiter(clock)
    pending = waiter.arm("1", image(2), routes=2, timeout=5, on_timeout="route 2")
    view = pending.public()
    assert (view["timeout"], view["deadline"], view["on_timeout"]) == (5, 1005.0, "route 2")
    assert view["preselect"] is None
    clock.now = 1005.0
    with pytest.raises(StaleRun):
        waiter.choose("1", pending.token, 1)  # past the deadline, before the gate noticed
    decision = waiter.wait(pending, lambda: False, poll_s=0.01)
    assert decision.timed_out and decision.routes is None and decision.route is None
    assert waiter.paused() == []


def test_no_timeout_means_no_deadline():
    waiter = Waiter()
    assert waiter.arm("1", image(), routes=2).public()["deadline"] is None
    assert waiter.arm("2", image(), routes=2, timeout=0).public()["deadline"] is None


def test_hold_stops_the_countdown_for_good():
    clock = Clock()
    waiter = Waiter(clock)
    pending = waiter.arm("1", image(), routes=2, timeout=2)
    assert waiter.hold("1", pending.token).deadline is None
    assert waiter.pending("tab")[0]["deadline"] is None
    clock.now += 100
    t, out = wait_in_thread(waiter, pending)
    time.sleep(0.15)
    assert t.is_alive(), "a held pause timed out"
    waiter.choose("1", pending.token, 2)
    t.join(2)
    assert out["decision"].route == 2
    with pytest.raises(StaleRun):
        waiter.hold("1", pending.token)


def test_hold_after_the_deadline_is_refused():
    clock = Clock()
    waiter = Waiter(clock)
    pending = waiter.arm("1", image(), routes=2, timeout=1)
    clock.now += 1
    with pytest.raises(StaleRun):
        waiter.hold("1", pending.token)
    assert waiter.wait(pending, lambda: False).timed_out


def test_a_mask_sent_again_by_the_page_does_not_stop_the_countdown():
    """The page re-sends kept masks at every pause on its own; only a click (hold) means a
    person is there, else an overnight queue with a kept mask would never park."""
    waiter = Waiter(Clock())
    pending = waiter.arm("1", image(), routes=2, timeout=3)
    deadline = pending.deadline
    waiter.set_mask("1", pending.token, torch.ones(8, 8, dtype=torch.uint8))
    assert pending.deadline == deadline is not None


def test_preselect_is_shown_with_the_pause():
    waiter = Waiter()
    waiter.arm("1", image(3), routes=3, preselect=[3, 1, 1])
    assert waiter.pending("tab")[0]["preselect"] == [3, 1, 1]


def test_a_failing_arm_listener_is_logged_and_the_pause_goes_on(caplog):
    waiter, seen = Waiter(), []
    waiter.on_arm(lambda pending: 1 / 0)
    waiter.on_arm(seen.append)  # later listeners still hear of it
    pending = waiter.arm("3", torch.zeros(1, 2, 2, 3), routes=2)
    assert seen == [pending] and waiter.get("3", pending.token) is pending
    assert "pause listener failed" in caplog.text


# -- captions and a Text Gate's pause ----------------------------------------------------------


def test_an_answer_carries_the_captions_the_page_sends():
    waiter = Waiter()
    pending = waiter.arm("1", image(2), routes=2, captions=["a", "b"])
    assert pending.public()["captions"] == ["a", "b"]
    decision = woken_by(waiter, pending, waiter.choose_each, "1", pending.token, [1, 2], ["a", "B"])
    assert decision.routes == [1, 2] and decision.captions == ["a", "B"]
    pending = waiter.arm("2", image(2), routes=2, captions=["a", "b"])
    decision = woken_by(waiter, pending, waiter.choose, "2", pending.token, 2)
    assert decision.captions is None  # none sent: the gate keeps the batch's own


@pytest.mark.parametrize(
    "shown, sent, error",
    [
        (None, ["a", "b"], "shows no captions"),
        (["a", "b"], ["a"], "1 for a batch of 2"),
        (["a", "b"], ["a", 2], "caption 2 must be text"),
        (["a", "b"], "a\nb", "must be a list"),
    ],
)
def test_captions_that_do_not_fit_the_pause_are_refused_and_it_still_waits(shown, sent, error):
    waiter = Waiter()
    pending = waiter.arm("1", image(2), routes=2, captions=shown)
    with pytest.raises(ValueError, match=error):
        waiter.choose_each("1", pending.token, [1, 1], sent)
    with pytest.raises(ValueError, match=error):
        waiter.choose("1", pending.token, 1, sent)
    assert waiter.paused()[0]["token"] == pending.token


def test_a_text_pause_shows_its_text_and_is_answered_with_a_text():
    waiter = Waiter()
    pending = waiter.arm("9", None, 1, text="a photo of a cat")
    view = pending.public()
    assert view["kind"] == "text" and view["text"] == "a photo of a cat"
    assert "batch" not in view and "routes" not in view
    with pytest.raises(ValueError, match="Text Gate"):
        waiter.choose("9", pending.token, 1)
    with pytest.raises(ValueError, match="Text Gate"):
        waiter.set_mask("9", pending.token, None)
    with pytest.raises(ValueError, match="text must be text"):
        waiter.pass_text("9", pending.token, 5)
    decision = woken_by(waiter, pending, waiter.pass_text, "9", pending.token, "a photo of a dog")
    assert decision.text == "a photo of a dog" and decision.routes == [1]


def test_an_image_pause_is_not_answered_with_a_text():
    waiter = Waiter()
    pending = waiter.arm("1", image(), routes=2)
    assert pending.public()["kind"] == "image"
    with pytest.raises(ValueError, match="Image Gate"):
        waiter.pass_text("1", pending.token, "x")
    assert waiter.paused()[0]["token"] == pending.token
