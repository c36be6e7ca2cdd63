"""web/gate_outputs.js on its own in headless Chromium: route labels from the `labels` widget.

gate_outputs.js imports nothing from ComfyUI, so it runs in any page: here the standalone
slot browser's server (which serves web/ at /web/) and a stand-in LiteGraph node. Needs
Chromium and playwright like tests/test_browser_page.py (skips without them, fails in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_browser_page import blank_page, chromium  # noqa: F401 - chromium: the shared fixture

# A node as LiteGraph makes it for ImageGate (the routes and labels widgets, the mask output,
# addOutput/removeOutput), created with default widgets and then given the workflow's values
# the way the frontend loads one (app.loadApiJson: `widget.value = v; widget.callback?.(v)`,
# and the Image Gate's widget callbacks run syncOutputs).
# A 3-route gate's outputs after the labelled routes: every output stays (prompts link by index).
OFF_AND_TAIL = [*(f"off ({i})" for i in range(4, 11)), "decisions", "latent", "captions"]
NODE = """
async ({ routes, labels, labelsFirst }) => {
  const m = await import('/web/gate_outputs.js');
  const node = {
    properties: {}, outputs: [{ name: 'mask' }],
    widgets: [{ name: 'routes', value: 2 }, { name: 'labels', value: '' }],
    addOutput(name) { this.outputs.push({ name, links: [] }); },
    removeOutput(i) { this.outputs.splice(i, 1); },
  };
  const widget = (name) => node.widgets.find((w) => w.name === name);
  m.syncOutputs(node);  // onNodeCreated: the widgets still hold their defaults
  const inputs = [['routes', routes], ['labels', labels]];
  for (const [name, value] of labelsFirst ? inputs.reverse() : inputs) {
    widget(name).value = value;
    m.syncOutputs(node);  // what the widget callbacks do
  }
  const state = () => ({
    labels: m.readLabels(node).slice(0, m.routeCount(node)),
    outputs: node.outputs.map((o) => o.label || o.name),
    widget: widget('labels').value,
  });
  const loaded = state();
  const labels2 = m.readLabels(node);  // the editor changes route 2, as GateController.setLabel does
  labels2[1] = m.cleanLabel('repair');
  m.writeLabels(node, labels2);
  m.syncOutputs(node);
  const edited = state();
  widget('routes').value = 1;  // fewer routes: the widget lists one label ...
  m.syncOutputs(node);
  widget('routes').value = routes;  // ... and the others come back
  m.syncOutputs(node);
  return { loaded, edited, restored: state() };
}
"""


@pytest.fixture
def blank(chromium, tmp_path: Path) -> Iterator:
    with blank_page(chromium, tmp_path / "bus") as page:
        yield page


@pytest.mark.browser
@pytest.mark.parametrize("labels", ["keep,fix,drop", "keep, fix\ndrop"])
@pytest.mark.parametrize("labels_first", [False, True])  # the workflow's input order
def test_labels_from_a_loaded_workflow_show_and_one_edit_keeps_the_rest(blank, labels, labels_first) -> None:
    got = blank.evaluate(NODE, {"routes": 3, "labels": labels, "labelsFirst": labels_first})
    assert got["loaded"] == {
        "labels": ["keep", "fix", "drop"],
        "outputs": ["mask", "keep (1)", "fix (2)", "drop (3)", *OFF_AND_TAIL],
        "widget": "keep, fix, drop",
    }
    assert got["edited"] == {
        "labels": ["keep", "repair", "drop"],
        "outputs": ["mask", "keep (1)", "repair (2)", "drop (3)", *OFF_AND_TAIL],
        "widget": "keep, repair, drop",
    }
    assert got["restored"] == got["edited"]
