"""The batch grid's model (web/gate_grid.js) and the panel view (web/gate_panel.js) on their own
in headless Chromium.

Neither module imports anything from ComfyUI, so they run in the standalone slot browser's
server (which serves web/ at /web/), as tests/test_web_labels.py does for gate_outputs.js.
The panel is driven with a model and stand-in handlers; the controller that feeds it runs in
tests/e2e/test_ui_e2e.py against a real ComfyUI. Needs Chromium and playwright (skips without
them, fails in CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_browser_page import blank_page, chromium  # noqa: F401 - chromium: the shared fixture

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("E2E_SHOTS")  # set to also keep a screenshot of the 16-image panel


@pytest.fixture
def blank(chromium, tmp_path: Path) -> Iterator:
    with blank_page(chromium, tmp_path / "bus", viewport={"width": 900, "height": 900}) as page:
        yield page


SELECTION = """
async () => {
  const { GridSelection } = await import('/web/gate_grid.js');
  const s = new GridSelection(16);
  const out = {};
  s.click(2); out.click = s.list();
  s.click(5, { shift: true }); out.shift = s.list();
  s.click(9, { ctrl: true }); out.ctrl = s.list();
  s.click(3, { ctrl: true }); out.ctrlOff = s.list();
  s.click(12, { shift: true }); out.shiftFromCtrl = s.list();
  s.click(7); out.plain = s.list();
  s.click(7); out.againClears = s.list();
  s.click(7); s.move(4); out.down = s.list();
  s.move(1, { shift: true }); out.shiftRight = s.list();
  s.move(-100); out.clamped = [s.list(), s.cursor];
  s.all(); out.all = s.size;
  s.clear(); out.none = s.size;
  return out;
}
"""


def test_selection_follows_click_shift_and_ctrl(blank) -> None:
    got = blank.evaluate(SELECTION)
    assert got["click"] == [2]
    assert got["shift"] == [2, 3, 4, 5]
    assert got["ctrl"] == [2, 3, 4, 5, 9]
    assert got["ctrlOff"] == [2, 4, 5, 9]
    assert got["shiftFromCtrl"] == list(range(3, 13))  # from the last ctrl-click, replacing
    assert got["plain"] == [7]
    assert got["againClears"] == []
    assert got["down"] == [11]
    assert got["shiftRight"] == [11, 12]
    assert got["clamped"] == [[0], 0]
    assert got["all"] == 16 and got["none"] == 0


def test_routes_preselect_columns_and_countdown_text(blank) -> None:
    got = blank.evaluate("""async () => {
      const g = await import('/web/gate_grid.js');
      return {
        columns: [1, 2, 4, 5, 16, 17, 64, 100].map(g.gridColumns),
        pre: g.normalisePreselect([2, 0, 3, 'x', 1.5, 11], 7, 3),
        preNone: g.normalisePreselect(null, 2, 3),
        send: g.routesToSend([2, null, 3]),
        counts: g.routeCounts([2, 1, 2, 1, 1]),
        single: [g.singleRoute([2, 2]), g.singleRoute([2, 1])],
        left: [g.secondsLeft(110, 100), g.secondsLeft(90, 100), g.secondsLeft(null, 100)],
        clock: [g.clock(42.2), g.clock(65), g.clock(0)],
        then: [g.onTimeoutText('park'), g.onTimeoutText('stop'), g.onTimeoutText('route 2', r => 'R' + r)],
      };
    }""")
    assert got["columns"] == [1, 2, 2, 3, 4, 5, 8, 8]
    assert got["pre"] == [2, None, 3, None, None, None, None]
    assert got["preNone"] == [None, None]
    assert got["send"] == [2, 1, 3]  # an image without a route goes down route 1
    assert got["counts"] == [{"route": 1, "count": 3}, {"route": 2, "count": 2}]
    assert got["single"] == [2, None]
    assert got["left"] == [10, 0, None]
    assert got["clock"] == ["43 s", "1:05", "0 s"]
    assert got["then"] == ["parks the batch in a slot", "stops the run", "sends every image down R2"]


# A GatePanel on the page with handlers that record their calls, drawn from a model built like
# GateController.render builds it. Thumbnails are small PNGs made on the page (blob URLs).
PANEL = """
async ({ batch, selected, assigned, view }) => {
  const { GatePanel } = await import('/web/gate_panel.js');
  const { ensureStylesheet } = await import('/web/format.js');
  ensureStylesheet('gate', '/web/gate.css');
  const calls = [];
  const record = (name) => (...args) => calls.push([name, ...args.map(a => (a instanceof Element ? 'el' : a))]);
  const on = new Proxy({}, { get: (_, name) => record(name) });
  const panel = new GatePanel(on);
  const holder = document.createElement('div');
  holder.style.cssText = 'width: 520px; height: 760px; background: #222; position: absolute; top: 0; left: 0';
  holder.append(panel.element);
  document.body.replaceChildren(holder);
  const thumb = async (i) => {
    const c = document.createElement('canvas'); c.width = 160; c.height = 120;
    const g = c.getContext('2d'); g.fillStyle = `hsl(${(i * 37) % 360} 60% 45%)`; g.fillRect(0, 0, 160, 120);
    g.fillStyle = '#fff'; g.font = '48px sans-serif'; g.fillText(String(i + 1), 50, 80);
    return URL.createObjectURL(await new Promise(r => c.toBlob(r)));
  };
  const urls = await Promise.all(Array.from({ length: batch }, (_, i) => thumb(i)));
  const labels = ['keep', 'reject', '', '', '', '', '', '', '', ''];
  const pause = { node: '5', token: 't', routes: 3, batch, width: 320, height: 240, labels: ['keep', 'reject', '3'] };
  const loaded = new Promise(r => panel.element.addEventListener('dg-grid-loaded', e => r(e.detail.count)));
  const counts = {};
  for (const r of assigned) if (r) counts[r] = (counts[r] ?? 0) + 1;
  panel.render({
    mode: 'paused', pause, view, index: 0, previewUrl: urls[0], overlayUrl: null,
    shownRoute: { route: assigned[0] ?? 1, own: assigned[0] != null },
    grid: batch > 1 ? {
      key: 't', columns: Math.min(8, Math.ceil(Math.sqrt(batch))), aspect: 0.75, cursor: selected[0] ?? 0,
      cells: urls.map((url, i) => ({ url, route: assigned[i] ?? 1, own: assigned[i] != null,
                                     selected: selected.includes(i), overlay: null })),
    } : null,
    labels, routes: 3, counts, canSend: batch > 1, sendTitle: 'Send', hint: 'hint',
    countdown: { text: '42 s left, then the gate parks the batch in a slot. Click here to stay.', urgent: false },
    orphaned: false, busy: false, status: 'Paused', note: '', noteIsError: false,
  });
  window.dgPanel = { panel, calls };
  return batch > 1 ? await loaded : 0;
}
"""


@pytest.mark.parametrize("batch", [1, 4, 16, 64])
def test_the_panel_draws_1_4_16_and_64_images(blank, batch: int) -> None:
    assigned = [2 if i in (1, 2) else None for i in range(batch)]
    loaded = blank.evaluate(
        PANEL,
        {
            "batch": batch,
            "selected": [1, 2] if batch > 1 else [],
            "assigned": assigned,
            "view": "grid" if batch > 1 else "single",
        },
    )
    cells = blank.locator(".dg-cell")
    if batch == 1:
        assert cells.count() == 0 and blank.is_visible(".dg-preview-img") and not blank.is_visible(".dg-send")
        return
    assert loaded == batch and cells.count() == batch
    assert blank.get_attribute(".dg-gate", "data-thumbs") == "loaded"
    columns = blank.evaluate(
        "() => getComputedStyle(document.querySelector('.dg-thumbs')).gridTemplateColumns.split(' ').length"
    )
    assert columns == {4: 2, 16: 4, 64: 8}[batch]
    badges = blank.eval_on_selector_all(
        ".dg-cell-badge", "els => els.map(e => [e.textContent, e.classList.contains('dg-default')])"
    )
    assert badges[1] == ["2 · reject", False] and badges[0] == ["1 · keep", True]
    assert blank.eval_on_selector_all(".dg-cell.dg-selected", "els => els.map(e => e.dataset.index)") == ["1", "2"]
    assert blank.inner_text(".dg-route[data-route='2'] .dg-route-count") == "×2"
    assert "42 s" in blank.inner_text(".dg-countdown")
    assert not blank.is_visible(".dg-preview-img") and blank.is_visible(".dg-send")
    if SHOTS and batch == 16:
        os.makedirs(SHOTS, exist_ok=True)
        blank.locator(".dg-gate").screenshot(path=os.path.join(SHOTS, "panel_grid16.png"))


def test_the_panel_reports_clicks_and_keys(blank) -> None:
    blank.evaluate(PANEL, {"batch": 16, "selected": [], "assigned": [None] * 16, "view": "grid"})

    def calls() -> list:
        return blank.evaluate("() => window.dgPanel.calls.splice(0)")

    blank.click(".dg-cell[data-index='3']")
    blank.click(".dg-cell[data-index='6']", modifiers=["Shift"])
    blank.click(".dg-cell[data-index='9']", modifiers=["Control"])
    got = [c for c in calls() if c[0] == "cell"]
    assert got == [
        ["cell", 3, {"shift": False, "ctrl": False}],
        ["cell", 6, {"shift": True, "ctrl": False}],
        ["cell", 9, {"shift": False, "ctrl": True}],
    ]
    for key in ["2", "Enter", "ArrowDown", "Shift+ArrowRight", "Control+a", " ", "Escape"]:
        blank.keyboard.press(key)
    got = [c for c in calls() if c[0] != "touch"]
    assert got == [
        ["choose", 2],
        ["send"],
        ["move", 4, {"shift": False}],
        ["move", 1, {"shift": True}],
        ["selectAll"],
        ["enlarge", 0],
        ["stop"],
    ]
    blank.dblclick(".dg-cell[data-index='5']")
    assert ["enlarge", 5] in calls()
    blank.click(".dg-route[data-route='3']")
    got = calls()
    assert ["choose", 3] in got and ["touch"] in got  # any click while paused stops a countdown


# ThumbLoader (web/image_loader.js) on stand-in <img>s: each records the URLs it is given and
# waits until the test settles it. `settle()` answers every load in flight: URLs in `fails` error.
LOADER = """
async () => {
  const { THUMB_LOADS, THUMB_RETRIES, ThumbLoader } = await import('/web/image_loader.js');
  const inFlight = [];
  let most = 0;
  const fake = (i) => {
    const classes = new Set();
    const img = { i, urls: [], classList: { add: (c) => classes.add(c), remove: (c) => classes.delete(c) }, classes };
    Object.defineProperty(img, 'src', { set(url) { img.urls.push(url); inFlight.push(img); most = Math.max(most, inFlight.length); } });
    return img;
  };
  let loaded = 0;
  const loader = new ThumbLoader(() => loaded++);
  const settle = (fails) => {
    for (const img of inFlight.splice(0)) (fails.has(img.urls.at(-1)) ? img.onerror : img.onload)();
  };
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const imgs = Array.from({ length: 30 }, (_, i) => fake(i));
  loader.loadAll(imgs.map((img, i) => [img, `/t?i=${i}`]));
  const first = inFlight.length;
  // Image 3 fails twice, then loads; image 7 fails every time.
  const fails = new Set(['/t?i=3', '/t?i=3&retry=2', '/t?i=7', '/t?i=7&retry=2', '/t?i=7&retry=3']);
  for (let round = 0; round < 12 && inFlight.length + loader.queue.length + loader.running; round++) {
    settle(fails);
    await wait(700);
  }
  const one = { first, most, loaded, urls3: imgs[3].urls, urls7: imgs[7].urls, failed7: imgs[7].classes.has('dg-cell-failed'),
                failed3: imgs[3].classes.has('dg-cell-failed'), limits: [THUMB_LOADS, THUMB_RETRIES] };
  // A new grid forgets the old one: a late answer of an old load counts for nothing.
  const old = fake(100);
  loader.loadAll([[old, '/old']]);
  const stale = inFlight.splice(0)[0];
  const fresh = [fake(200), fake(201)];
  loader.loadAll(fresh.map((img, i) => [img, `/new?i=${i}`]));
  loaded = 0;
  stale.onload?.();
  settle(new Set());
  return { one, second: { loaded, urls: fresh.map((img) => img.urls) } };
}
"""


def test_thumbnails_load_twelve_at_a_time_and_a_failed_one_is_asked_again(blank) -> None:
    got = blank.evaluate(LOADER)
    one = got["one"]
    assert one["limits"] == [12, 3]
    assert one["first"] == 12 and one["most"] == 12  # never more in flight than THUMB_LOADS
    assert one["urls3"] == ["/t?i=3", "/t?i=3&retry=2", "/t?i=3&retry=3"] and not one["failed3"]
    assert one["urls7"] == ["/t?i=7", "/t?i=7&retry=2", "/t?i=7&retry=3"] and one["failed7"]  # three tries
    assert one["loaded"] == 0  # image 7 never loaded: the grid is not reported loaded
    assert got["second"] == {"loaded": 1, "urls": [["/new?i=0"], ["/new?i=1"]]}


# A GatePanel wired to a GateViewModel the way GateController wires them (caption handlers
# change the model and draw it again), on a pause of `batch` images with captions. `calls`
# records what reaches the controller's other handlers (send, choose, ...).
CAPTIONS = """
async ({ batch, view, height = 760 }) => {
  const { GatePanel } = await import('/web/gate_panel.js');
  const { GateViewModel } = await import('/web/gate_view.js');
  const { ensureStylesheet } = await import('/web/format.js');
  ensureStylesheet('gate', '/web/gate.css');
  const model = new GateViewModel((node, token, i) => {
    const c = document.createElement('canvas'); c.width = 160; c.height = 120;
    const g = c.getContext('2d'); g.fillStyle = `hsl(${(i * 47) % 360} 55% 45%)`; g.fillRect(0, 0, 160, 120);
    return c.toDataURL();
  });
  const calls = [];
  const masks = { overlayFor: () => null, describe: () => '' };
  let panel;
  const draw = () => panel.render(model.panelModel({ labels: ['keep', 'fix', 'drop'], routes: 3, masks, shownUrl: null }));
  const caption = (change, after) => () => { change(); draw(); after?.(); };
  const handlers = {
    editCaption: (i) => caption(() => model.editCaption(i))(),
    typeCaption: (t) => caption(() => model.typeCaption(t))(),
    moveCaption: (s) => caption(() => model.moveCaption(s))(),
    restoreCaption: () => caption(() => model.restoreCaption())(),
    leaveCaption: (i) => caption(() => model.editing === i && model.leaveCaption())(),
    sendCaptions: () => caption(() => model.leaveCaption(), () => calls.push(['send', model.captionsToSend()]))(),
    send: () => calls.push(['send', model.captionsToSend()]),
  };
  panel = new GatePanel(new Proxy(handlers, { get: (t, name) => t[name] ?? ((...a) => calls.push([name, ...a])) }));
  const holder = document.createElement('div');
  holder.style.cssText = `width: 560px; height: ${height}px; background: #222; position: absolute; top: 0; left: 0`;
  holder.append(panel.element);
  document.body.replaceChildren(holder);
  const some = ['a tabby cat asleep on a red sofa, long caption that does not fit on one line', 'a dog',
                '', 'two\\nlines', 'a bird', 'a fish', 'a horse', 'a cow', 'a hen'];
  const captions = Array.from({ length: batch }, (_, i) => some[i] ?? `image ${i + 1}`);
  model.showPause({ node: '5', token: 't', routes: 3, batch, width: 320, height: 240, labels: ['keep', 'fix', 'drop'],
                    captions, preselect: null });
  model.view = view;
  draw();
  panel.focus();
  window.dgCap = { model, panel, calls, draw };
}
"""


def test_a_grid_shows_a_caption_line_under_each_thumbnail_and_edits_it_in_place(blank) -> None:
    blank.evaluate(CAPTIONS, {"batch": 9, "view": "grid"})
    lines = blank.eval_on_selector_all(".dg-cell-caption", "els => els.map(e => [e.textContent, e.hidden])")
    assert lines[0][0].startswith("a tabby cat") and lines[2] == ["no caption", False] and len(lines) == 9
    clipped = blank.evaluate(
        "() => { const e = document.querySelector('.dg-cell-caption'); return e.scrollWidth > e.clientWidth; }"
    )
    assert clipped  # one line, cut short; the whole text is its title and the editor's
    frame, line = blank.evaluate("""() => { const c = document.querySelector('.dg-cell');
      return [c.querySelector('.dg-cell-frame').getBoundingClientRect().bottom, c.querySelector('.dg-cell-caption').getBoundingClientRect().top]; }""")
    assert line >= frame - 0.5  # under the thumbnail, not over it
    blank.click(".dg-cell[data-index='1'] .dg-cell-caption")
    editor = ".dg-cell[data-index='1'] .dg-cell-editor"
    assert blank.evaluate(f'() => document.activeElement === document.querySelector("{editor}")')
    blank.keyboard.type(", running")
    blank.keyboard.press("Shift+Enter")  # a new line in the caption
    blank.keyboard.type("fast")
    blank.keyboard.press("Tab")  # on to the next image's caption
    assert blank.evaluate("() => document.activeElement.closest('.dg-cell').dataset.index") == "2"
    blank.keyboard.type("tmp")
    blank.keyboard.press("Escape")  # that one as it was, and out of the field: keys are the panel's again
    state = blank.evaluate(
        "() => ({ captions: dgCap.model.captions, editing: dgCap.model.editing, "
        "focus: document.activeElement.classList.contains('dg-gate') })"
    )
    assert state["captions"][1] == "a dog, running\nfast" and state["captions"][2] == ""
    assert state["editing"] is None and state["focus"] is True
    marked = blank.eval_on_selector_all(".dg-cell-caption", "els => els.map(e => e.classList.contains('dg-edited'))")
    assert marked == [False, True] + [False] * 7
    blank.keyboard.press("Tab")  # from the panel: edit the current image's caption (the cursor is there)
    assert blank.evaluate("() => dgCap.model.editing") == 2
    blank.keyboard.press("Control+Enter")  # Send from the caption, with the captions as they stand
    send = blank.evaluate("() => dgCap.calls.filter(c => c[0] === 'send')")
    assert send == [["send", state["captions"]]]
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        blank.locator(".dg-gate").screenshot(path=os.path.join(SHOTS, "panel_grid_captions.png"))


def test_a_grid_taller_than_its_panel_scrolls_and_keeps_every_caption_line_whole(blank) -> None:
    """A dataset page of 16 with captions in a short panel: the rows keep their height (a
    caption line under each thumbnail) and the grid scrolls, instead of squeezing the rows and
    cutting the caption lines off."""
    blank.evaluate(CAPTIONS, {"batch": 16, "view": "grid", "height": 520})
    got = blank.evaluate("""() => {
      const thumbs = document.querySelector('.dg-thumbs');
      const cells = [...document.querySelectorAll('.dg-cell')].map(c => {
        const cell = c.getBoundingClientRect(), line = c.querySelector('.dg-cell-caption').getBoundingClientRect();
        const frame = c.querySelector('.dg-cell-frame').getBoundingClientRect();
        return [line.height, cell.bottom - line.bottom, line.top - frame.bottom];
      });
      return { cells, scrolls: thumbs.scrollHeight > thumbs.clientHeight + 1 };
    }""")
    assert got["scrolls"]
    assert len(got["cells"]) == 16
    for height, below, gap in got["cells"]:
        assert height == 16 and below >= -0.5 and gap >= -0.5, got["cells"]


def test_the_enlarged_image_has_its_whole_caption_in_a_box_under_it(blank) -> None:
    blank.evaluate(CAPTIONS, {"batch": 4, "view": "single"})
    box = ".dg-caption"
    assert blank.is_visible(box) and blank.input_value(box).startswith("a tabby cat asleep")
    under = blank.evaluate("""() => document.querySelector('.dg-caption').getBoundingClientRect().top
        >= document.querySelector('.dg-preview').getBoundingClientRect().bottom - 0.5""")
    assert under
    blank.keyboard.press("Tab")
    blank.keyboard.press("Enter")  # the next image, and its caption
    assert blank.evaluate("() => [dgCap.model.index, dgCap.model.editing]") == [1, 1]
    assert blank.input_value(box) == "a dog"
    blank.keyboard.press("Control+a")  # the text box's own select-all, not the grid's
    blank.keyboard.type("a wet dog")
    blank.keyboard.press("Shift+Tab")
    assert blank.input_value(box).startswith("a tabby cat") and blank.evaluate("() => dgCap.model.index") == 0
    blank.keyboard.press("Escape")
    got = blank.evaluate("() => [dgCap.model.captions.slice(0, 2), dgCap.model.editing, dgCap.calls.map(c => c[0])]")
    assert got[0] == ["a tabby cat asleep on a red sofa, long caption that does not fit on one line", "a wet dog"]
    assert got[1] is None
    assert "stop" not in got[2] and "selectAll" not in got[2] and "choose" not in got[2]  # keys stayed in the box
    blank.keyboard.press("Escape")  # now from the panel: Stop
    assert blank.evaluate("() => dgCap.calls.map(c => c[0])").count("stop") == 1
    if SHOTS:
        blank.locator(".dg-gate").screenshot(path=os.path.join(SHOTS, "panel_single_caption.png"))


def test_what_each_key_does_in_a_caption(blank) -> None:
    got = blank.evaluate("""async () => {
      const { captionKey } = await import('/web/gate_captions.js');
      return [
        { key: 'Enter' }, { key: 'Enter', shiftKey: true }, { key: 'Enter', ctrlKey: true }, { key: 'Enter', metaKey: true },
        { key: 'Tab' }, { key: 'Tab', shiftKey: true }, { key: 'Escape' }, { key: 'a' }, { key: 'ArrowLeft' },
        { key: 'Tab', ctrlKey: true }, { key: 'Enter', altKey: true },
      ].map(captionKey);
    }""")
    assert got == ["next", None, "send", "send", "next", "previous", "restore", None, None, None, None]
