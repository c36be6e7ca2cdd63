"""The pause alert (web/pause_alert.js) on its own in headless Chromium: the real document.title
and Web Audio, a stand-in timer stepped by hand.

pause_alert.js imports nothing, so it runs in the standalone slot browser's page (which serves
web/ at /web/), as tests/test_web_grid.py does for gate_grid.js. Beeps are counted by wrapping
OscillatorNode.prototype.start. What the extension entry feeds it (this tab's open pauses) is
checked in a real ComfyUI by tests/e2e/test_ui_e2e.py. Needs Chromium and playwright (skips
without them, fails in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_browser_page import blank_page, chromium  # noqa: F401 - chromium: the shared fixture

pytestmark = pytest.mark.browser

WAITING = "⏸ Gate waiting · "
MARK = "⏸ "

# window.dg: a PauseAlert whose mode is `dg.mode`, whose timer only runs when the test calls
# dg.tick(), and counts of beeps (oscillators started), timers started and cancelled.
HARNESS = """
async () => {
  const m = await import('/web/pause_alert.js');
  const dg = window.dg = { m, mode: undefined, beeps: 0, timers: 0, cancelled: 0, flash: null };
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) { dg.beeps++; return start.apply(this, args); };
  dg.alert = new m.PauseAlert({
    mode: () => dg.mode,
    every: (fn, ms) => { dg.timers++; dg.flash = fn; dg.ms = ms; return dg.timers; },
    cancel: (handle) => { if (handle === dg.timers) { dg.cancelled++; dg.flash = null; } },
  });
  dg.tick = () => { dg.flash?.(); return document.title; };
  document.title = 'Base - ComfyUI';
}
"""


@pytest.fixture
def alert(chromium, tmp_path: Path) -> Iterator:
    """A page with the harness, after a click: the person has interacted, so sound may play."""
    with blank_page(chromium, tmp_path / "bus") as page:
        page.mouse.click(5, 5)
        page.evaluate(HARNESS)
        yield page


def state(page) -> dict:
    return page.evaluate(
        "() => ({ title: document.title, beeps: dg.beeps, timers: dg.timers, cancelled: dg.cancelled })"
    )


def test_the_setting_offers_four_modes_and_defaults_to_the_title_flash(alert) -> None:
    got = alert.evaluate("""() => ({
      def: dg.m.PAUSE_ALERT_SETTING_DEF,
      modes: [undefined, null, 'beep', 'none', 'sound', 'title flash', 'both'].map(dg.m.alertMode),
    })""")
    assert got["def"]["id"] == "DatasetGates.PauseAlert" and got["def"]["type"] == "combo"
    assert got["def"]["options"] == ["none", "sound", "title flash", "both"]
    assert got["def"]["defaultValue"] == "title flash" and got["def"]["category"][0] == "Dataset Gates"
    assert got["modes"] == ["title flash"] * 3 + ["none", "sound", "title flash", "both"]


def test_the_title_flashes_while_any_pause_is_open_and_comes_back_exactly(alert) -> None:
    alert.evaluate("() => dg.alert.update(true)")  # the setting is unset: the default, title flash
    assert state(alert) == {"title": WAITING + "Base - ComfyUI", "beeps": 0, "timers": 1, "cancelled": 0}
    assert alert.evaluate("() => dg.ms") == 1000
    assert alert.evaluate("() => dg.tick()") == MARK + "Base - ComfyUI"
    assert alert.evaluate("() => dg.tick()") == WAITING + "Base - ComfyUI"
    alert.evaluate("() => dg.alert.update(true)")  # a second gate paused: still one alert
    assert state(alert)["timers"] == 1
    alert.evaluate("() => dg.alert.update(false)")
    assert state(alert) == {"title": "Base - ComfyUI", "beeps": 0, "timers": 1, "cancelled": 1}
    alert.evaluate("() => dg.alert.update(false)")  # told again: nothing left to undo
    assert state(alert) == {"title": "Base - ComfyUI", "beeps": 0, "timers": 1, "cancelled": 1}


def test_a_hidden_tab_is_alerted_as_a_visible_one(alert) -> None:
    """The rule the README states: the alert does not depend on the tab being on screen."""
    alert.evaluate("""() => {
      for (const [name, value] of [['visibilityState', 'hidden'], ['hidden', true]]) {
        Object.defineProperty(document, name, { configurable: true, get: () => value });
      }
      document.dispatchEvent(new Event('visibilitychange'));
      dg.mode = 'both';
      dg.alert.update(true);
    }""")
    assert state(alert) == {"title": WAITING + "Base - ComfyUI", "beeps": 1, "timers": 1, "cancelled": 0}
    assert alert.evaluate("() => dg.tick()") == MARK + "Base - ComfyUI"
    alert.evaluate("() => dg.alert.update(false)")
    assert state(alert)["title"] == "Base - ComfyUI"


def test_the_flash_follows_the_page_s_own_title_and_never_puts_back_an_older_one(alert) -> None:
    alert.evaluate("() => dg.alert.update(true)")
    # ComfyUI shows progress in the title while the gate waits: the flash carries it.
    alert.evaluate("() => { document.title = '[50%] ImageGate' }")
    assert alert.evaluate("() => dg.tick()") == MARK + "[50%] ImageGate"
    assert alert.evaluate("() => dg.tick()") == WAITING + "[50%] ImageGate"
    alert.evaluate("() => dg.alert.update(false)")
    assert state(alert)["title"] == "[50%] ImageGate"
    # The page sets its title after the last flash and before the pause ends: that one stays.
    alert.evaluate("() => { dg.alert.update(true); document.title = 'Done - ComfyUI'; dg.alert.update(false) }")
    assert state(alert)["title"] == "Done - ComfyUI"


@pytest.mark.parametrize(
    ("mode", "flashes", "beeps"), [("none", False, 0), ("sound", False, 1), ("title flash", True, 0), ("both", True, 1)]
)
def test_each_mode_flashes_and_beeps_once_per_alert(alert, mode: str, flashes: bool, beeps: int) -> None:
    alert.evaluate("(mode) => { dg.mode = mode; dg.alert.update(true); dg.alert.update(true); dg.tick() }", mode)
    title = state(alert)["title"]
    assert title == (MARK + "Base - ComfyUI" if flashes else "Base - ComfyUI")
    assert state(alert)["beeps"] == beeps  # two pauses, one beep
    alert.evaluate("() => dg.alert.update(false)")
    assert state(alert)["title"] == "Base - ComfyUI"
    alert.evaluate("() => { dg.alert.update(true); dg.alert.update(false) }")  # a new pause, a new alert
    assert state(alert)["beeps"] == 2 * beeps and state(alert)["title"] == "Base - ComfyUI"


def test_a_setting_changed_during_a_pause_applies_at_the_next_flash(alert) -> None:
    alert.evaluate("() => dg.alert.update(true)")
    assert state(alert)["title"] == WAITING + "Base - ComfyUI"
    alert.evaluate("() => { dg.mode = 'none' }")
    assert alert.evaluate("() => dg.tick()") == "Base - ComfyUI"
    assert alert.evaluate("() => dg.tick()") == "Base - ComfyUI"
    alert.evaluate("() => { dg.mode = 'both' }")
    assert alert.evaluate("() => dg.tick()") == WAITING + "Base - ComfyUI"
    alert.evaluate("() => dg.alert.update(false)")
    assert state(alert) == {"title": "Base - ComfyUI", "beeps": 0, "timers": 1, "cancelled": 1}


# Runs as the page loads, so no call from the test (which counts as a user gesture) comes
# first: a pause alert with sound in a page nobody has interacted with yet.
UNTOUCHED = f"""
window.addEventListener('load', async () => {{
  await ({HARNESS.strip()})();
  dg.mode = 'sound';
  dg.untouched = navigator.userActivation.hasBeenActive;
  dg.alert.update(true);
  dg.alert.update(false);
  dg.done = true;
}});
"""


def test_no_sound_without_an_interaction_and_none_when_audio_fails(chromium, tmp_path: Path) -> None:
    """A reloaded tab has had no click: the browser would refuse to play (and warn), so the
    alert stays silent. Where creating the audio fails, the title flash still runs."""
    with blank_page(chromium, tmp_path / "bus") as page:
        console: list[str] = []
        page.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
        page.context.add_init_script(UNTOUCHED)
        page.reload()
        page.wait_for_function("() => window.dg?.done")
        assert page.evaluate("() => [dg.untouched, dg.beeps, document.title]") == [False, 0, "Base - ComfyUI"]
        page.evaluate("() => { window.AudioContext = class { constructor() { throw new Error('no device'); } }; }")
        page.evaluate("() => { dg.mode = 'both'; dg.alert.update(true) }")  # has been active by now
        assert page.evaluate("() => navigator.userActivation.hasBeenActive") is True
        assert state(page) == {"title": WAITING + "Base - ComfyUI", "beeps": 0, "timers": 2, "cancelled": 1}
        page.evaluate("() => dg.alert.update(false)")
        assert state(page)["title"] == "Base - ComfyUI"
        assert console == []
