"""What README.md tells a ComfyUI user about the page, checked in a real ComfyUI.

What test_ui_e2e.py does not cover: key 0 and the focus a new pause takes by itself, the slot
browser's command in the Extensions menu, and where the mask painter setting lives.
"""

from __future__ import annotations

import os

import pytest
from test_ui_e2e import DECIDED, chromium, history_nodes, ui  # noqa: F401 (fixtures, used by name)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.environ.get("COMFYUI_DIR") and os.environ.get("COMFYUI_PYTHON")),
        reason="UI e2e: set COMFYUI_DIR and COMFYUI_PYTHON to run against a real ComfyUI",
    ),
]

TEN_ROUTES = """() => {
    const gate = app.graph.findNodesByType('ImageGate')[0];
    const load = app.graph.findNodesByType('LoadImage')[0];
    const w = gate.widgets.find(w => w.name === 'routes'); w.value = 10; w.callback(10);
    const rep = LiteGraph.createNode('RepeatImageBatch'); rep.pos = [20, 560]; app.graph.add(rep);
    rep.widgets.find(w => w.name === 'amount').value = 3;
    load.connect(0, rep, 0);
    rep.connect(0, gate, gate.findInputSlot('image'));
    const save = LiteGraph.createNode('SaveImage'); save.pos = [800, 500]; app.graph.add(save);
    save.widgets[0].value = 'dg_readme_route10';
    gate.connect(gate.findOutputSlot('route_10'), save, 0);
    return save.id;
}"""


def test_key_0_with_nothing_selected_sends_the_batch_down_route_10_without_a_click(ui) -> None:
    """No click first: the new pause has the focus. The grid shows the batch, with the buttons
    the README names; 0 is route 10, and with nothing selected the whole batch goes at once."""
    ui.build(["dg_readme_a", "dg_readme_b"])
    save = ui.page.evaluate(TEN_ROUTES)
    ui.queue()
    pause = ui.wait_paused()
    page = ui.page
    assert pause["routes"] == 10 and pause["batch"] == 3
    assert page.locator(".dg-cell").count() == 3 and page.locator(".dg-route").count() == 10
    for button in (".dg-edit-mask", ".dg-clear-mask", ".dg-stop", ".dg-send"):
        assert page.is_visible(button), button
    page.keyboard.press("0")
    page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(pause["prompt_id"])
    assert history_nodes(entry) == {str(save)}
    assert len(ui.outputs("dg_readme_route10")) == 3


def test_the_slot_browser_command_is_in_the_extensions_menu(ui) -> None:
    page = ui.page
    page.locator(".comfyui-logo, [data-testid='comfy-menu-button']").first.click()
    page.get_by_role("menuitem", name="Extensions").first.hover()
    page.get_by_role("menuitem", name="Dataset Gates", exact=True).first.hover()
    page.get_by_role("menuitem", name="Dataset Gates: slot browser").first.click()
    page.wait_for_selector(".dg-floating-browser .dg-browser")
    ui.shot("floating_browser")
    assert page.inner_text(".dg-floating-browser .dg-title") == "Slots"


def test_the_mask_painter_setting_is_under_dataset_gates(ui) -> None:
    setting = ui.page.evaluate(
        "() => { const d = app.ui.settings.settingsLookup['DatasetGates.MaskPainter'];"
        " return { category: d.category[0], options: d.options } }"
    )
    assert setting["category"] == "Dataset Gates"
    assert {"ComfyUI MaskEditor", "Built-in brush"} <= {
        o if isinstance(o, str) else o.get("value") for o in setting["options"]
    }
