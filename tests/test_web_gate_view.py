"""One gate's view model (GateViewModel in web/gate_view.js) on its own in headless Chromium.

gate_view.js has no DOM and makes no requests (the controller hands it the preview URL maker),
so it runs in the standalone slot browser's server, which serves web/ at /web/, as
tests/test_web_grid.py does for gate_grid.js. The panel it feeds is checked there; the
controller that drives both runs in tests/e2e/test_ui_e2e.py. Needs Chromium and playwright
(skips without them, fails in CI).
"""

from __future__ import annotations

import pytest
from test_browser_page import blank, chromium, harness_fixture  # noqa: F401 - the shared fixtures

pytestmark = pytest.mark.browser


# window.dg: a view model whose preview URLs name their arguments, kept masks as a stand-in
# (image 1 has its own tint), and `panel()`, the panel model for a node whose labels are
# "keep, reject" and whose routes widget says 3.
HARNESS = """
async () => {
  const { GateViewModel } = await import('/web/gate_view.js');
  const model = new GateViewModel((node, token, index, side) => `P:${node}:${token}:${index}:${side ?? ''}`);
  const masks = { overlayFor: (key) => (key === 1 ? 'tint1' : null), describe: () => '' };
  const panel = (shownUrl = 'shown') => model.panelModel({ labels: ['keep', 'reject', ''], routes: 3, masks, shownUrl });
  const pause = { node: '12:5', token: 't1', batch: 4, routes: 3, width: 320, height: 240, source: 'slot a',
                  labels: ['keep', 'reject', '3'], preselect: [2, null, 3, 9], deadline: null, on_timeout: 'park' };
  window.dg = { model, masks, panel, pause };
}
"""
view = harness_fixture(HARNESS)


def test_idle_shows_no_pause(view) -> None:
    got = view.evaluate("() => dg.panel()")
    assert got["mode"] == "idle" and got["grid"] is None and got["previewUrl"] is None
    assert got["status"] == "Image Gate: each run pauses here until you pick a route."
    assert got["counts"] == {} and got["canSend"] is False and got["countdown"] is None
    assert got["labels"] == ["keep", "reject", ""] and got["routes"] == 3
    assert got["note"] == "" and got["busy"] is False


def test_a_dataset_page_of_mixed_sizes_says_so_rather_than_its_padded_size(view) -> None:
    got = view.evaluate("""() => {
      dg.model.showPause({ ...dg.pause, sizes: [[240, 320], [100, 80], [240, 320], [50, 50]] });
      const mixed = dg.panel().status;
      dg.model.showPause({ ...dg.pause, token: "t2", sizes: [[240, 320], [240, 320], [240, 320], [240, 320]] });
      return { mixed, same: dg.panel().status };
    }""")
    assert got["mixed"] == "Paused: pick a route · mixed sizes · batch of 4 · slot a"
    assert got["same"] == "Paused: pick a route · 320×240 · batch of 4 · slot a"


def test_a_batch_pause_shows_a_grid_with_each_images_route(view) -> None:
    got = view.evaluate("""() => {
      const fresh = dg.model.showPause(dg.pause);
      const m = dg.panel();
      dg.model.assigned[1] = 1;  // the person routed image 2 meanwhile
      const again = dg.model.showPause({ ...dg.pause });  // the same pause from GET /pending
      return { fresh, again, m, assigned: dg.model.assigned, view: dg.model.view };
    }""")
    assert got["fresh"] is True and got["again"] is False
    assert got["assigned"] == [2, 1, 3, None]  # shown again: the routes picked here stay
    m = got["m"]
    assert m["mode"] == "paused" and m["view"] == "grid" == got["view"]
    assert m["status"] == "Paused: pick a route · 320×240 · batch of 4 · slot a"
    grid = m["grid"]
    assert grid["key"] == "t1" and grid["columns"] == 2 and grid["aspect"] == 0.75 and grid["cursor"] == 0
    assert [c["url"] for c in grid["cells"]] == [f"P:12:5:t1:{i}:160" for i in range(4)]
    # Preselect 9 is beyond the 3 routes: no route of its own, so route 1 on Send.
    assert [(c["route"], c["own"], c["selected"], c["overlay"]) for c in grid["cells"]] == [
        (2, True, False, None),
        (1, False, False, "tint1"),
        (3, True, False, None),
        (1, False, False, None),
    ]
    assert m["counts"] == {"2": 1, "3": 1}
    assert m["canSend"] is True
    assert m["sendTitle"] == "Send (Enter): 2 down route 1 · keep, 1 down route 2 · reject, 1 down route 3"
    assert m["hint"].startswith("Click, shift- or ctrl-click to select")
    assert m["previewUrl"] == "P:12:5:t1:0:"


def test_selection_and_the_enlarged_image_decide_the_targets_and_the_hint(view) -> None:
    got = view.evaluate("""() => {
      const m = dg.model;
      m.showPause(dg.pause);
      m.selection.click(1);
      m.selection.click(3, { shift: true });
      const grid = { targets: m.targets(), hint: m.hint(), selected: dg.panel().grid.cells.map((c) => c.selected) };
      m.view = 'single';
      m.index = 1;
      const p = dg.panel();
      return { grid, single: { targets: m.targets(), hint: m.hint(), preview: p.previewUrl, overlay: p.overlayUrl,
                               shown: p.shownRoute, selected: p.grid.cells.map((c) => c.selected) } };
    }""")
    assert got["grid"]["targets"] == [1, 2, 3]
    assert got["grid"]["selected"] == [False, True, True, True]
    assert (
        got["grid"]["hint"]
        == "3 selected: a route key routes them · Enter sends all (2 without a route: route 1 · keep)"
    )
    single = got["single"]
    assert single["targets"] == [1]
    assert single["preview"] == "P:12:5:t1:1:" and single["overlay"] == "tint1"
    assert single["shown"] == {"route": 1, "own": False}
    assert single["selected"] == [False] * 4  # the grid shows no selection behind the enlarged image
    assert single["hint"].startswith("A route key routes this image and moves on · Enter sends all (2 without")


def test_a_single_image_sends_only_with_a_route_of_its_own(view) -> None:
    got = view.evaluate("""() => {
      const m = dg.model;
      m.showPause({ ...dg.pause, token: 't2', batch: 1, preselect: null });
      const before = { canSend: dg.panel().canSend, grid: dg.panel().grid, view: m.view, hint: m.hint(),
                       targets: m.targets() };
      m.showPause({ ...dg.pause, token: 't3', batch: 1, preselect: [3] });
      return { before, after: dg.panel().canSend, overlay: dg.panel().overlayUrl };
    }""")
    assert got["before"] == {"canSend": False, "grid": None, "view": "single", "hint": "", "targets": []}
    assert got["after"] is True
    assert got["overlay"] is None  # one image: the tint for every image (the stand-in has none)


def test_the_countdown_text_and_a_stopped_countdown(view) -> None:
    got = view.evaluate("""() => {
      const m = dg.model;
      const now = Date.now() / 1000;
      m.showPause({ ...dg.pause, deadline: now + 95.5, on_timeout: 'route 2' });
      const running = m.countdown();
      m.showPause({ ...dg.pause, deadline: now + 5 });
      const urgent = m.countdown();
      m.showPause({ ...dg.pause, deadline: now - 1 });
      const over = m.countdown();
      m.held = 't1';
      m.showPause({ ...dg.pause, deadline: now + 95 });  // an older GET /pending answer
      return { running, urgent, over, held: m.countdown(), deadline: m.info.deadline, panel: dg.panel().countdown };
    }""")
    assert got["running"] == {
        "text": "1:36 left, then the gate sends every image down route 2 · reject. Click here to stay.",
        "urgent": False,
    }
    assert got["urgent"]["urgent"] is True and got["urgent"]["text"].startswith("5 s left, then the gate parks")
    assert got["over"] == {"text": "Time is up: the gate parks the batch in a slot…", "urgent": True}
    stopped = {"text": "Countdown stopped: the gate waits for you.", "urgent": False}
    assert got["held"] == stopped and got["panel"] == stopped
    assert got["deadline"] is None  # a countdown stopped here stays stopped


def test_what_the_status_says_after_the_answer(view) -> None:
    got = view.evaluate("""() => {
      const m = dg.model;
      const out = {};
      m.showPause(dg.pause);
      m.selection.click(2);
      m.decide(null, [2, 2, 1, 2]);
      const p = dg.panel('kept-src');
      out.mixed = [p.status, p.counts, p.canSend, p.previewUrl, p.grid.cells.map((c) => [c.route, c.selected])];
      m.showPause({ ...dg.pause, token: 't2' });
      m.decide(2, [2, 2, 2, 2]);
      out.one = m.statusText([]);
      m.showPause({ ...dg.pause, token: 't3' });
      m.decide(1, [1, 1, 1, 1], true);
      out.late = m.statusText([]);
      m.showPause({ ...dg.pause, token: 't4' });
      m.decide(null, null, true);
      m.say('Parked in slot gate_5: resume it from the slot browser.');
      out.parked = [m.statusText([]), dg.panel().note];
      m.showPause({ ...dg.pause, token: 't5' });
      m.decide(null);
      out.stopped = m.statusText([]);
      m.showPause({ ...dg.pause, token: 't6', batch: 3, preselect: [2, 2, 2] });
      m.decide(null, [0, 0, 0]);  // a Stop's routes say nothing: the images keep theirs
      out.stoppedAssigned = m.assigned;
      return out;
    }""")
    status, counts, can_send, preview, cells = got["mixed"]
    assert status == "Sent: 1 down route 1 · keep, 3 down route 2 · reject"
    assert counts == {} and can_send is False
    assert preview == "kept-src"  # after the answer the panel keeps the image it showed
    assert cells == [[2, False], [2, False], [1, False], [2, False]]
    assert got["one"] == "Sent down route 2 · reject"
    assert got["late"] == "Time ran out: Sent down route 1 · keep"
    assert got["parked"] == [
        "Time ran out: parked, nothing was sent on",
        "Parked in slot gate_5: resume it from the slot browser.",
    ]
    assert got["stopped"] == "Stopped: nothing was sent on"
    assert got["stoppedAssigned"] == [2, 2, 2]


def test_another_tabs_pause_and_the_note(view) -> None:
    got = view.evaluate("""() => {
      const m = dg.model;
      m.mode = 'elsewhere';
      m.other = { ...dg.pause, token: undefined, orphaned: false };
      const open = dg.panel();
      m.other = { ...m.other, orphaned: true };
      const orphaned = dg.panel();
      m.mode = 'paused';
      m.showPause({ ...dg.pause, painted: [0] });
      const painted = dg.panel().note;
      dg.masks.describe = () => 'Mask painted on 1 image; kept for the next run until cleared.';
      const kept = dg.panel().note;
      m.say('Sending the mask failed: boom', true);
      m.busy = 1;
      const error = dg.panel();
      return { open: [open.status, open.note, open.orphaned], orphaned: [orphaned.note, orphaned.orphaned],
               painted, kept, error: [error.note, error.noteIsError, error.busy] };
    }""")
    assert got["open"] == ["A gate is waiting in another tab.", "Answer it in the tab that queued the run.", False]
    assert got["orphaned"] == ["That tab is gone: take the pause over to answer it here.", True]
    assert got["painted"] == "A mask was painted for this pause."
    assert got["kept"] == "Mask painted on 1 image; kept for the next run until cleared."
    assert got["error"] == ["Sending the mask failed: boom", True, True]


def test_captions_are_edited_one_at_a_time_and_esc_puts_one_back(view) -> None:
    got = view.evaluate("""() => {
      const m = dg.model;
      m.showPause({ ...dg.pause, captions: ['a cat', 'a dog', '', 'a bird'] });
      const out = { grid: dg.panel().grid.cells.map((c) => [c.caption, c.edited, c.editing]) };
      out.start = [m.editCaption(1), m.editing, m.index, m.selection.cursor, m.selection.size];
      m.typeCaption('a dog, running');
      out.editing = dg.panel().grid.cells[1];
      out.hint = dg.panel().hint;
      out.moved = [m.moveCaption(1), m.editing];  // Tab / Enter: the next image's caption
      m.typeCaption('tmp');
      m.restoreCaption();  // Esc: as it was when its editing began, and out of the field
      out.restored = [m.captions[2], m.editing, m.captionEdited(2)];
      m.editCaption(3);
      out.past = [m.moveCaption(1), m.editing];  // past the last: editing ends
      m.editCaption(0);
      out.before = [m.moveCaption(-1), m.editing];
      out.sent = m.captionsToSend();
      out.edited = [0, 1, 2, 3].map((i) => m.captionEdited(i));
      return out;
    }""")
    assert got["grid"] == [
        ["a cat", False, False],
        ["a dog", False, False],
        ["", False, False],
        ["a bird", False, False],
    ]
    assert got["start"] == [True, 1, 1, 1, 0]  # the cursor moves there; nothing gets selected
    assert got["editing"]["caption"] == "a dog, running" and got["editing"]["edited"] is True
    assert got["editing"]["editing"] is True
    assert got["hint"].startswith("Tab or Enter: next caption · Shift+Tab: the one before · Shift+Enter: new line")
    assert got["moved"] == [True, 2]
    assert got["restored"] == ["", None, False]
    assert got["past"] == [False, None] and got["before"] == [False, None]
    assert got["sent"] == ["a cat", "a dog, running", "", "a bird"]
    assert got["edited"] == [False, True, False, False]


def test_the_enlarged_image_shows_its_whole_caption_and_edits_page_with_it(view) -> None:
    got = view.evaluate("""() => {
      const m = dg.model;
      m.showPause({ ...dg.pause, captions: ['one', 'two\\nlines', 'three', 'four'] });
      m.view = 'single';
      m.editCaption(1);
      const first = dg.panel().caption;
      m.moveCaption(1);  // in the enlarged view the next caption brings its image
      const p = dg.panel();
      m.leaveCaption();
      const left = [dg.panel().caption.editing, m.captions[2]];
      m.showPause({ ...dg.pause });  // the same pause again (GET /pending): the edits stay
      const again = m.captions[1];
      m.decide(1, [1, 1, 1, 1]);
      const decided = [dg.panel().caption, m.editCaption(0)];
      return { first, index: m.index, second: p.caption, preview: p.previewUrl, grid: p.grid.cells[2].editing,
               hint: p.hint, left, again, decided };
    }""")
    assert got["first"] == {"index": 1, "text": "two\nlines", "edited": False, "editing": True}
    assert got["second"] == {"index": 2, "text": "three", "edited": False, "editing": True}
    assert got["preview"] == "P:12:5:t1:2:" and got["grid"] is False  # the box under the image edits it
    assert got["left"] == [False, "three"]
    assert got["again"] == "two\nlines"
    assert got["decided"][0]["index"] == 2 and got["decided"][1] is False  # shown, no longer editable


def test_a_pause_without_captions_or_with_a_list_that_does_not_fit_shows_none(view) -> None:
    got = view.evaluate("""() => {
      const m = dg.model;
      m.showPause({ ...dg.pause, captions: null });
      const none = [dg.panel().hasCaptions, dg.panel().caption, dg.panel().grid.cells[0].caption, m.editCaption(0),
                    m.captionsToSend(), dg.panel().hint.includes('Tab')];
      m.showPause({ ...dg.pause, token: 't2', captions: ['a', 'b'] });  // not one per image: not shown
      const short = [dg.panel().hasCaptions, m.captionsToSend()];
      m.showPause({ ...dg.pause, token: 't3', batch: 1, captions: ['only one'], preselect: null });
      const one = [dg.panel().caption, dg.panel().hint];
      m.editCaption(0);
      m.leaveCaption();
      return { none, short, one, targets: m.targets() };
    }""")
    assert got["none"] == [False, None, None, False, None, False]
    assert got["short"] == [False, None]
    assert got["one"] == [{"index": 0, "text": "only one", "edited": False, "editing": False}, "Tab: edit the caption"]
    assert got["targets"] == []  # one image: editing its caption selects nothing, so a route key still sends it
