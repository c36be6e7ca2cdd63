"""The dataset nodes' panel (web/dataset_node.js, with web/dataset_view.js) in headless Chromium.

Neither module imports anything from ComfyUI, so they run in the standalone slot browser's
server, which serves web/ at /web/, as tests/test_web_text_gate.py does for the Text Gate's
panel. The node is a stand-in with what the controller uses of a LiteGraph node (addDOMWidget,
computeSize from the widget's min height, setSize); the messages are `dg_dataset` outputs as
gates/comfy/dataset_nodes.py `_ui` writes them. Needs Chromium and playwright (skips without
them, fails in CI).
"""

from __future__ import annotations

import pytest
from test_browser_page import blank, chromium, harness_fixture  # noqa: F401 - the shared fixtures

pytestmark = pytest.mark.browser

# window.dg: `make(type)` puts a stand-in node of that type with its DatasetController on the
# page (its DOM widget in a 320 px wide holder) and returns {node, controller, panel}. The
# stylesheet the controller asks for is loaded first (the same key: its own request is a no-op).
HARNESS = """
async () => {
  const mod = await import('/web/dataset_node.js');
  const { ensureStylesheet } = await import('/web/format.js');
  ensureStylesheet('dataset', '/web/dataset.css');
  const link = document.querySelector('link[data-dg-css="dataset"]');
  if (!link.sheet) await new Promise((resolve, reject) => { link.onload = resolve; link.onerror = reject; });
  const holder = document.createElement('div');
  holder.style.cssText = 'width: 320px; position: absolute; top: 0; left: 0; background: #222';
  document.body.replaceChildren(holder);
  const make = (type) => {
    const node = {
      size: [320, 80], widgets: [],
      addDOMWidget(name, kind, element, options) {
        const widget = { name, type: kind, element, options };
        this.widgets.push(widget);
        holder.replaceChildren(element);
        return widget;
      },
      computeSize() { return [320, 40 + Math.max(0, ...this.widgets.map((w) => w.options.getMinHeight()))]; },
      setSize(size) { this.size = size; },
    };
    const controller = new mod.DatasetController(node, type);
    return { node, controller, panel: controller.panel.element };
  };
  const text = (root, selector) => [...root.querySelectorAll(selector)].filter((e) => !e.closest('[hidden]'))
    .map((e) => e.textContent);
  window.dg = { ...mod, make, text };
}
"""
panel = harness_fixture(HARNESS)

LOAD = {
    "title": "/data/portraits",
    "lines": [
        "1,234 / 5,000 decided: 900 keep · 300 drop · 34 fix",
        "files 17–32 of 120 undecided · batch 1024x768",
    ],
    "errors": [
        {"file": "a/broken.png", "error": "truncated PNG"},
        {"file": "b.jpg", "error": "not an image"},
    ],
    "buckets": [],
}
RESIZE = {
    "title": "buckets",
    "lines": ["4 images in 2 buckets"],
    "errors": [],
    "buckets": [{"bucket": "832x1216", "count": 3}, {"bucket": "1024x1024", "count": 1}],
}


def test_before_any_run_the_panel_says_one_line_and_nothing_else(panel) -> None:
    got = panel.evaluate("""() => {
      const out = {};
      for (const type of Object.keys(dg.DATASET_NODES)) {
        const { panel, controller, node } = dg.make(type);
        out[type] = { state: panel.dataset.state, shown: dg.text(panel, ':scope > *'), widget: node.widgets[0].name,
                      serialize: controller.widget.serialize };
      }
      return out;
    }""")
    assert set(got) == {"DatasetGatesDatasetLoad", "DatasetGatesBucketResize", "DatasetGatesDatasetSave"}
    for one in got.values():
        assert one["state"] == "idle" and one["widget"] == "dg_dataset" and one["serialize"] is False
        assert len(one["shown"]) == 1 and one["shown"][0].startswith("Each run")


def test_dataset_load_shows_its_folder_lines_and_error_rows_and_the_node_grows(panel) -> None:
    got = panel.evaluate(
        """(message) => {
      const { panel, controller, node } = dg.make('DatasetGatesDatasetLoad');
      const before = node.size[1];
      controller.show({ dg_dataset: [message] });
      return {
        state: panel.dataset.state,
        hint: panel.querySelector('.dg-ds-hint').hidden,
        title: [panel.querySelector('.dg-ds-title').textContent, panel.querySelector('.dg-ds-title').title],
        lines: dg.text(panel, '.dg-ds-line'),
        head: dg.text(panel, '.dg-ds-head'),
        errors: dg.text(panel, '.dg-ds-error'),
        files: dg.text(panel, '.dg-ds-error-file'),
        buckets: panel.querySelectorAll('.dg-ds-bucket').length,
        before, after: node.size[1], need: node.computeSize()[1],
      };
    }""",
        LOAD,
    )
    assert got["state"] == "shown" and got["hint"] is True
    assert got["title"] == ["/data/portraits", "/data/portraits"]
    assert got["lines"] == LOAD["lines"]
    assert got["head"] == ["Could not read 2 files:"]
    assert got["errors"] == ["a/broken.png — truncated PNG", "b.jpg — not an image"]
    assert got["files"] == ["a/broken.png", "b.jpg"]
    assert got["buckets"] == 0
    assert got["after"] >= got["need"] > got["before"]  # grown to hold what it shows


def test_bucket_resize_draws_each_bucket_as_a_bar_of_its_share(panel) -> None:
    got = panel.evaluate(
        """(message) => {
      const { panel, controller } = dg.make('DatasetGatesBucketResize');
      controller.show({ dg_dataset: [message] });
      return {
        names: dg.text(panel, '.dg-ds-bucket-name'),
        counts: dg.text(panel, '.dg-ds-bucket-count'),
        widths: [...panel.querySelectorAll('.dg-ds-bar-fill')].map((b) => b.style.width),
        pixels: [...panel.querySelectorAll('.dg-ds-bar-fill')].map((b) => Math.round(b.getBoundingClientRect().width)),
        bar: Math.round(panel.querySelector('.dg-ds-bar').getBoundingClientRect().width),
        errors: dg.text(panel, '.dg-ds-head'),
      };
    }""",
        RESIZE,
    )
    assert got["names"] == ["832x1216", "1024x1024"]
    assert got["counts"] == ["3", "1"]
    assert got["widths"] == ["100%", "33.3%"]  # as the browser writes them back
    assert got["pixels"][0] == got["bar"] > 0 and abs(got["pixels"][1] - got["bar"] / 3) <= 1
    assert got["errors"] == []


def test_many_error_rows_scroll_inside_a_panel_of_bounded_height(panel) -> None:
    got = panel.evaluate(
        """(message) => {
      const { panel, controller } = dg.make('DatasetGatesDatasetLoad');
      controller.show({ dg_dataset: [{ ...message, errors: [] }] });
      const few = controller.panel.minHeight();
      const errors = Array.from({ length: 50 }, (_, i) => ({ file: `f${i}.png`, error: 'cannot identify image file' }));
      controller.show({ dg_dataset: [{ ...message, errors }] });
      const list = panel.querySelector('.dg-ds-errors').parentElement;
      return { rows: panel.querySelectorAll('.dg-ds-error').length, head: dg.text(panel, '.dg-ds-head'),
               scrolls: list.scrollHeight > list.clientHeight + 100, few, many: controller.panel.minHeight() };
    }""",
        LOAD,
    )
    assert got["rows"] == 50 and got["head"] == ["Could not read 50 files:"]
    assert got["scrolls"] is True
    assert got["few"] < got["many"] < got["few"] + 160  # the list scrolls; the node stays small


def test_the_message_is_read_defensively_and_other_outputs_change_nothing(panel) -> None:
    got = panel.evaluate(
        """([load, resize]) => {
      const { panel, controller } = dg.make('DatasetGatesDatasetLoad');
      controller.show({ images: [] });  // another UI output: still the hint
      const out = { other: panel.dataset.state };
      controller.show({ dg_dataset: [resize, load] });  // the last message wins
      out.last = dg.text(panel, '.dg-ds-line');
      controller.show(undefined);
      out.kept = dg.text(panel, '.dg-ds-line');
      out.odd = dg.datasetMessage({ dg_dataset: [{ lines: ['x', 2], errors: [null, { file: 'a' }, 'no'],
        buckets: [{ bucket: '512x512', count: 1234 }, { bucket: 5 }, null] }] });
      out.none = [dg.datasetMessage(null), dg.datasetMessage({ dg_dataset: [] }), dg.datasetMessage({ dg_dataset: 'x' })];
      return out;
    }""",
        [LOAD, RESIZE],
    )
    assert got["other"] == "idle"
    assert got["last"] == got["kept"] == LOAD["lines"]
    assert got["odd"] == {
        "title": "",
        "lines": ["x", "2"],
        "errors": [{"file": "a", "error": "could not be read"}],
        "buckets": [{"bucket": "512x512", "count": 1234, "text": "1,234", "share": 1}],
    }
    assert got["none"] == [None, None, None]
