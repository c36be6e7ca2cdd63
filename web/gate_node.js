// One Image Gate node in the page: the controller. It wires the panel (gate_panel.js) to the
// node, takes the pause / done events and the clicks and keys the panel reports, makes the
// requests they call for and sizes the node; what every gate's controller does with a pause
// (the answer's request, another tab's pause, the countdown) is pause_controller.js's. What
// the panel shows is the view model's (gate_view.js); the masks and their buttons are
// gate_masks.js's. The extension entry creates one GateController per node (node.dgGate).
// No side effects at import.
import { comfyGate } from "./comfy_api.js";
import { gridColumns, routesToSend, singleRoute } from "./gate_grid.js";
import { GateMasks } from "./gate_masks.js";
import {
  cleanLabel, hideLabelsWidget, readLabels, routeCount, syncOutputs, widgetByName, writeLabels,
} from "./gate_outputs.js";
import { GatePanel, PREVIEW_MIN } from "./gate_panel.js";
import { GateViewModel } from "./gate_view.js";
import { PauseController } from "./pause_controller.js";
import { setWidget } from "./slot_picker.js";

const PREVIEW_MAX = 420;
const GRID_MAX = PREVIEW_MAX; // the grid grows the node up to this height, and scrolls beyond
const CELL_MIN = 56; // a grid thumbnail's smallest width: the node widens to fit a row of them
const CAPTION_LINE = 16; // a grid thumbnail's caption line (gate.css .dg-cell-caption)

export class GateController extends PauseController {
  /**
   * @param {object} hooks  PauseController's, and `picker` the page's SlotPicker
   *   (slot_picker.js) for the get_id / send_id buttons.
   */
  constructor(app, node, hooks = {}) {
    super(app, node, hooks, { kind: "Image Gate", waits: "waits for a route. Open it to choose" });
    this.model = new GateViewModel((...args) => comfyGate.previewUrl(...args));
    this.pausedAt = 0; // performance.now() when this pause reached the page
    this.gridMs = null; // pause to every thumbnail loaded, for the last grid
    this.masks = new GateMasks(this); // kept across runs
    this.panel = new GatePanel({
      choose: (route) => this.route(route),
      send: () => this.send(),
      stop: () => this.stop(),
      editMask: () => this.masks.edit(),
      clearMask: () => this.masks.clear(),
      page: (step) => this.page(step),
      cell: (index, keys) => this.select(() => this.model.selection.click(index, keys)),
      move: (step, keys) => this.select(() => this.model.selection.move(step, keys)),
      selectAll: () => this.select(() => this.model.selection.all()),
      selectNone: () => this.select(() => this.model.selection.clear()),
      enlarge: (index) => this.enlarge(index),
      showGrid: () => this.showGrid(),
      touch: () => this.hold(),
      gridLoaded: () => this.gridLoaded(),
      runAgain: () => this.runAgain(),
      takeOver: () => this.takeOver(),
      pickSlot: (name, anchor) => this.pickSlot(name, anchor),
      labelChanged: (route, text) => this.setLabel(route, text),
      layout: () => this.fit({ shrink: this.model.mode === "idle" }),
      editCaption: (index) => this.caption(() => this.model.editCaption(index)),
      typeCaption: (text) => this.caption(() => this.model.typeCaption(text)),
      moveCaption: (step) => this.caption(() => this.model.moveCaption(step)),
      restoreCaption: () => this.caption(() => this.model.restoreCaption()),
      leaveCaption: (index) => this.caption(() => this.model.editing === index && this.model.leaveCaption()),
      sendCaptions: () => this.caption(() => this.model.leaveCaption(), () => this.send()),
    });
    this.widget = node.addDOMWidget("dg_gate", "dg_gate", this.panel.element, {
      serialize: false, getValue: () => "", setValue: () => {}, getMinHeight: () => this.panel.minHeight(),
    });
    this.widget.serialize = false;
    hideLabelsWidget(node);
    // Loading a workflow sets widgets with `value = v; callback?.(v)` (app.loadApiJson does):
    // outputs, buttons and the label editor follow both widgets.
    for (const widget of [widgetByName(node, "routes"), widgetByName(node, "labels")]) {
      if (!widget) continue;
      const callback = widget.callback;
      widget.callback = (...args) => {
        const result = callback?.apply(widget, args);
        this.sync();
        return result;
      };
    }
    this.sync();
  }

  // -- outputs and labels ---------------------------------------------------------------
  /** Outputs and labels from the widgets/properties; `loading` keeps linked outputs. */
  sync({ loading = false } = {}) {
    syncOutputs(this.node);
    this.render();
    this.fit();
  }

  setLabel(route, text) {
    const labels = readLabels(this.node);
    labels[route - 1] = cleanLabel(text);
    writeLabels(this.node, labels);
    this.sync();
    this.node.graph?.change?.();
  }

  // -- server events ----------------------------------------------------------------------
  pause(data) {
    if (data.token === this.answeredToken) return; // answered here; the done event is on its way
    const fresh = this.model.showPause(data);
    if (fresh) {
      this.pausedAt = performance.now();
      this.gridMs = null;
      this.say("");
    }
    this.tick();
    this.render();
    this.fit({ grow: true });
    if (fresh) this.autoFocus();
    if (fresh && this.masks.kept.size) this.masks.push({ clearFirst: false, what: "Re-sending the kept mask…" });
  }

  done(data) {
    const m = this.model;
    // The server drops a pause from GET /pending before its done event goes out (a timed-out
    // gate parks its batch in between), so a poll's answer can call the pause over first:
    // its done event still says how it ended.
    const late = !m.info && m.mode === "idle" && m.expired?.token === data.token;
    if (late) m.info = m.expired;
    m.expired = null;
    if (!m.info || data.token !== m.info.token) return;
    this.decide(data.route, Array.isArray(data.routes) ? data.routes : null, data);
    if (late) this.fit({ grow: true });
  }

  // -- actions -----------------------------------------------------------------------------
  /**
   * A route button or key: with images selected (or one enlarged) they get that route and the
   * enlarged view moves on to the next image; with nothing selected the whole batch goes down
   * it at once, as a gate without a grid does.
   */
  route(route) {
    const m = this.model;
    if (m.mode !== "paused" || m.busy) return; // a mask upload must not be overtaken
    const targets = m.targets();
    if (!targets.length) {
      this.choose(route);
      return;
    }
    for (const i of targets) m.assigned[i] = route;
    if (m.view === "single" && m.index < m.batch - 1) this.page(1);
    else this.render();
  }

  async choose(route) {
    if (this.model.busy) return;
    const routes = Array(this.model.batch).fill(route);
    const captions = this.model.captionsToSend();
    await this.answer("Choosing", (node, token) => comfyGate.choose(node, token, route, captions),
      () => this.decide(route, routes));
  }

  /** Send (Enter): one route per image, the default route where an image has none. */
  async send() {
    const m = this.model;
    if (m.mode !== "paused" || m.busy || !m.canSend()) return;
    const routes = routesToSend(m.assigned);
    const captions = m.captionsToSend();
    await this.answer("Sending", (node, token) => comfyGate.chooseEach(node, token, routes, captions),
      () => this.decide(singleRoute(routes), routes));
  }

  /** A caption edit (`change` on the view model) while paused, drawn; then `after`, if any. */
  caption(change, after = null) {
    if (this.model.mode !== "paused") return;
    change();
    this.render();
    after?.();
  }

  stop() {
    return this.answer("Stop", (node, token) => comfyGate.stop(node, token), () => this.decide(null, null));
  }

  decide(route, routes = null, done = null) {
    this.model.decide(route, routes, Boolean(done?.timed_out));
    this.tick();
    this.say(done?.parked ? `Parked in slot ${done.parked}: resume it from the slot browser.` : "");
    this.render();
  }

  page(step) {
    const m = this.model;
    if (m.mode !== "paused") return;
    const next = m.index + step;
    if (next < 0 || next >= m.batch) return;
    m.index = next;
    if (m.view === "single") m.selection.only(next);
    this.render();
  }

  /** A change of selection (clicks, arrows, select all / none) on the grid. */
  select(change) {
    const m = this.model;
    if (m.mode !== "paused" || m.view !== "grid") return;
    change();
    m.index = m.selection.cursor;
    this.render();
  }

  /** One image of the batch enlarged (with paging); route keys then route that image. */
  enlarge(index) {
    const m = this.model;
    if (m.mode !== "paused" || m.batch < 2) return;
    m.index = Math.min(m.batch - 1, Math.max(0, index));
    m.selection.only(m.index);
    m.view = "single";
    this.render();
    this.fit({ grow: true });
  }

  showGrid() {
    const m = this.model;
    if (m.batch < 2) return;
    m.view = "grid";
    m.selection.only(m.index);
    m.selection.clear(); // back on the grid with the cursor there, nothing selected
    this.render();
    this.fit({ grow: true });
  }

  gridLoaded() {
    if (this.model.mode !== "paused" || this.gridMs !== null) return;
    this.gridMs = Math.round(performance.now() - this.pausedAt);
  }

  runAgain() {
    const m = this.model;
    const command = this.app.extensionManager?.command;
    const queued = command ? command.execute("Comfy.QueuePrompt") : this.app.queuePrompt(0);
    const before = m.info?.token ?? null;
    // The new run can pause here before the queue call resolves: then that pause speaks.
    const repaused = () => m.mode === "paused" && m.info?.token !== before;
    Promise.resolve(queued).then(() => repaused() || this.say("Queued: the run will pause here again."),
      (err) => repaused() || this.say(`Could not queue: ${err.message}`, true));
  }

  pickSlot(name, anchor) {
    const widget = widgetByName(this.node, name);
    if (!widget) return;
    this.hooks.picker?.open({
      at: anchor, mode: name === "send_id" ? "send" : "get", title: name, value: String(widget.value ?? ""),
      onPick: (id) => setWidget(this.node, widget, id),
    });
  }

  // -- drawing -----------------------------------------------------------------------------
  render() {
    this.panel.render(this.model.panelModel({
      labels: readLabels(this.node),
      routes: routeCount(this.node),
      masks: this.masks.kept,
      shownUrl: this.panel.image.getAttribute("src"),
    }));
  }

  /** Resize the node to its content: `grow` makes room for the preview, `shrink` drops it. */
  fit({ grow = false, shrink = false } = {}) {
    const node = this.node;
    if (!node.size) return;
    const { info, batch } = this.model;
    let [width, height] = node.size;
    const grid = info && batch > 1 && this.model.view === "grid";
    if (grow && grid) width = Math.max(width, gridColumns(batch) * (CELL_MIN + 4) + 20);
    let need = node.computeSize()[1];
    if (grow && info) {
      const aspect = Math.min(2, Math.max(0.5, info.height / Math.max(1, info.width)));
      let wanted;
      if (grid) {
        const columns = gridColumns(batch);
        const cell = (width - 20 - (columns - 1) * 4) / columns;
        const line = this.model.captions ? CAPTION_LINE : 0;
        wanted = Math.min(GRID_MAX, Math.ceil(batch / columns) * (cell * aspect + line + 4));
      } else {
        wanted = Math.min(PREVIEW_MAX, (width - 20) * aspect);
      }
      need += Math.max(PREVIEW_MIN, wanted) - PREVIEW_MIN;
    }
    if (height < need || (shrink && height > need) || width !== node.size[0]) {
      node.setSize([width, Math.max(need, shrink ? 0 : height)]);
      node.setDirtyCanvas?.(true, true);
    }
  }
}
