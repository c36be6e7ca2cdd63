"""What a Text Gate does with one run: pause on a string, let a person edit it, pass it on.

It pauses in the Image Gate's Waiter (a pause with a text instead of images), so the same
events, run tokens, owner tab, take-over, countdown hold and Cancel apply, and the page finds
its pauses where it finds the Image Gate's. Free of ComfyUI: its pieces come in through `Hooks`.
"""

from __future__ import annotations

from typing import Any

from .captions import check_text
from .parking import STOP
from .run import Hooks, announce_done, wait_for_answer
from .waiter import MAX_TEXT_BYTES, Waiter

PASS = "pass"
TEXT_ON_TIMEOUT = (PASS, STOP)


def run_text_gate(
    *,
    waiter: Waiter,
    hooks: Hooks,
    node: str,
    text: str,
    signal: Any = None,
    timeout: float = 0,
    on_timeout: str = PASS,
) -> tuple[str, Any]:
    """Pause with `text` until a person passes it (edited or not) or stops the run. Returns
    (text, signal): the passed text, and `signal` as it came, for ordering; with no signal
    wired, the passed text again, so whatever is linked there gets a value, never None.

    With `timeout` > 0 (seconds) an unanswered pause passes the text as it came
    (`on_timeout` "pass") or stops the run ("stop").
    """
    if timeout < 0:
        raise ValueError(f"timeout must be 0 (wait forever) or more seconds, got {timeout}")
    if on_timeout not in TEXT_ON_TIMEOUT:
        raise ValueError(f"on_timeout must be one of {', '.join(TEXT_ON_TIMEOUT)}; got {on_timeout!r}")
    check_text(text, "text", MAX_TEXT_BYTES)
    pending = waiter.arm(
        node,
        None,
        1,
        text=text,
        prompt_id=hooks.prompt_id(),
        client_id=hooks.client_id(),
        timeout=timeout,
        on_timeout=on_timeout,
    )
    decision = wait_for_answer(waiter, hooks, pending)
    passed = text if decision.timed_out and on_timeout == PASS else decision.text
    announce_done(hooks, pending, None if passed is None else [1], timed_out=decision.timed_out)
    if passed is None:  # Stop, or the countdown ran out with on_timeout "stop"
        raise hooks.interrupt()
    return passed, (passed if signal is None else signal)
