"""The Text Gate's model (web/text_gate_view.js) and panel (web/text_gate_panel.js) on their own
in headless Chromium.

Neither imports anything from ComfyUI, so they run in the standalone slot browser's server,
which serves web/ at /web/, as tests/test_web_grid.py does for the Image Gate's panel. The
panel is wired to the model the way TextGateController wires them; the controller itself runs
in tests/e2e/test_text_gate_e2e.py. Needs Chromium and playwright (skips without them, fails in CI).
"""

from __future__ import annotations

import os

import pytest
from test_browser_page import blank, chromium, harness_fixture  # noqa: F401 - the shared fixtures

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("E2E_SHOTS")

# window.dg: a TextGateModel and a TextGatePanel on the page, wired as the controller wires them;
# `calls` records what reaches the controller's requests (send with the text, stop, touch, ...).
HARNESS = """
async () => {
  const { TextGateModel } = await import('/web/text_gate_view.js');
  const { TextGatePanel } = await import('/web/text_gate_panel.js');
  const { ensureStylesheet } = await import('/web/format.js');
  ensureStylesheet('gate', '/web/gate.css');
  const model = new TextGateModel();
  const calls = [];
  let panel;
  const draw = () => panel.render(model.panelModel());
  panel = new TextGatePanel({
    type: (t) => { model.type(t); draw(); }, edit: () => model.startEdit(), leave: () => model.leave(),
    restore: () => { model.restore(); draw(); }, send: () => calls.push(['send', model.text]),
    stop: () => calls.push(['stop']), touch: () => calls.push(['touch']), takeOver: () => calls.push(['takeOver']),
    layout: () => {},
  });
  const holder = document.createElement('div');
  holder.style.cssText = 'width: 420px; height: 300px; background: #222; position: absolute; top: 0; left: 0';
  holder.append(panel.element);
  document.body.replaceChildren(holder);
  draw();
  const pause = { node: '7', token: 't1', kind: 'text', text: 'a photo of a cat,\\nsitting', deadline: null,
                  on_timeout: 'pass', prompt_id: 'p', created: 1 };
  window.dg = { model, panel, calls, draw, pause };
}
"""
text = harness_fixture(HARNESS)


def test_the_model_says_what_happened_to_the_text(text) -> None:
    got = text.evaluate("""() => {
      const m = dg.model;
      const out = { idle: m.panelModel() };
      out.fresh = m.showPause(dg.pause);
      out.paused = m.panelModel();
      m.startEdit();
      m.type('a photo of a dog');
      out.edited = m.panelModel().edited;
      m.restore();
      out.restored = [m.text, m.panelModel().edited];
      m.startEdit();
      m.type('a dog');
      out.again = m.showPause({ ...dg.pause });  // the same pause from GET /pending: the edit stays
      out.kept = m.text;
      m.decide('a dog');
      out.passed = [m.panelModel().status, m.panelModel().editable, m.panelModel().showText];
      m.showPause({ ...dg.pause, token: 't2' });
      m.decide(m.shown, true);
      out.late = m.statusText();
      m.showPause({ ...dg.pause, token: 't3' });
      m.decide(null);
      out.stopped = m.statusText();
      const now = Date.now() / 1000;
      m.showPause({ ...dg.pause, token: 't4', deadline: now + 65.5 });
      out.countdown = m.countdown();
      m.mode = 'elsewhere';
      m.other = { ...dg.pause, token: undefined, orphaned: true };
      out.elsewhere = [m.panelModel().status, m.panelModel().note, m.panelModel().orphaned];
      return out;
    }""")
    idle = got["idle"]
    assert idle["status"] == "Text Gate: each run pauses here until you pass the text on."
    assert idle["showText"] is False and idle["countdown"] is None
    assert got["fresh"] is True and got["again"] is False
    paused = got["paused"]
    assert paused["text"] == "a photo of a cat,\nsitting" and paused["editable"] is True and paused["edited"] is False
    assert paused["hint"].startswith("Enter: Send · Shift+Enter: new line · Esc: undo this edit")
    assert got["edited"] is True and got["restored"] == ["a photo of a cat,\nsitting", False]
    assert got["kept"] == "a dog"
    assert got["passed"] == ["Passed on, edited", False, True]
    assert got["late"] == "Time ran out: passed on as it came"
    assert got["stopped"] == "Stopped: nothing was passed on"
    assert got["countdown"] == {
        "text": "1:06 left, then the gate passes the text on as it came. Click here to stay.",
        "urgent": False,
    }
    assert got["elsewhere"] == [
        "A Text Gate is waiting in another tab.",
        "That tab is gone: take the pause over to answer it here.",
        True,
    ]


def test_the_panel_edits_with_the_keyboard_and_sends_on_enter(text) -> None:
    text.evaluate("() => { dg.model.showPause(dg.pause); dg.draw(); dg.panel.focus(); }")
    box = ".dg-text-box"
    assert text.evaluate("() => document.activeElement === document.querySelector('.dg-text-box')")
    assert text.input_value(box) == "a photo of a cat,\nsitting" and text.is_visible(".dg-send")
    text.keyboard.press("Shift+Enter")  # a new line: the text box's own
    text.keyboard.type("on a mat")
    assert text.input_value(box) == "a photo of a cat,\nsitting\non a mat"
    assert text.evaluate("() => document.querySelector('.dg-text-box').classList.contains('dg-edited')")
    text.keyboard.press("Control+a")
    text.keyboard.type("x")
    text.keyboard.press("Escape")  # as it was when the edit began, and out of the box
    state = text.evaluate("""() => ({ text: dg.model.text, value: document.querySelector('.dg-text-box').value,
        panel: document.activeElement.classList.contains('dg-text-gate'), calls: dg.calls.map(c => c[0]) })""")
    assert state["text"] == state["value"] == "a photo of a cat,\nsitting"
    assert state["panel"] is True and "stop" not in state["calls"]
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        text.locator(".dg-text-gate").screenshot(path=os.path.join(SHOTS, "text_gate_panel.png"))
    text.click(box)
    text.keyboard.type(", edited")
    text.keyboard.press("Enter")
    assert text.evaluate("() => dg.calls.filter(c => c[0] === 'send')") == [
        ["send", "a photo of a cat,\nsitting, edited"]
    ]
    text.evaluate("() => document.querySelector('.dg-text-gate').focus()")
    text.keyboard.press("Escape")  # on the panel: Stop
    assert text.evaluate("() => dg.calls.filter(c => c[0] === 'stop').length") == 1
    text.evaluate("() => { dg.model.decide(dg.model.text); dg.draw(); }")
    assert text.evaluate("() => document.querySelector('.dg-text-box').readOnly") is True
    assert not text.is_visible(".dg-send") and "Passed on, edited" in text.inner_text(".dg-gate-status")


def test_what_each_key_does_in_the_text(text) -> None:
    got = text.evaluate("""async () => {
      const { textKey } = await import('/web/text_gate_panel.js');
      return [{ key: 'Enter' }, { key: 'Enter', ctrlKey: true }, { key: 'Enter', shiftKey: true },
              { key: 'Enter', altKey: true }, { key: 'Escape' }, { key: 'Tab' }, { key: 'a' }].map(textKey);
    }""")
    assert got == ["send", "send", None, None, "restore", None, None]
