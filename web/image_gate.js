// Dataset Gates: the ComfyUI extension entry (the only module here with side effects).
// Wires the Image Gate and Text Gate panels into their nodes, slot pickers into the bus nodes,
// the dataset nodes' panels (and each run's output into them), the pause / done socket events
// and GET /pending (this tab's pauses, and other tabs') into the right node and into the pause
// alert, and the slot browser into the sidebar. The page's state lives
// in its one DatasetGates object (and in each node's GateController).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { OPEN_COMMAND, SlotBrowsers } from "./browser_tab.js";
import { ensureStylesheet } from "./format.js";
import { comfyGate } from "./comfy_api.js";
import { DATASET_NODES, DatasetController } from "./dataset_node.js";
import { pauseKey } from "./gate_api.js";
import { GateController } from "./gate_node.js";
import { PAINTER_BRUSH, PAINTER_EDITOR, PAINTER_SETTING } from "./mask_editor_bridge.js";
import { findNodeByPath, hasNodeOfType } from "./node_lookup.js";
import { PAUSE_ALERT_SETTING, PAUSE_ALERT_SETTING_DEF, PauseAlert } from "./pause_alert.js";
import { SlotPicker } from "./slot_picker.js";
import { TextGateController } from "./text_gate_node.js";

const PAUSE_EVENT = "datasete_gate.pause";
const DONE_EVENT = "datasete_gate.done";
const BUS_NODES = { DatasetGatesBusLoad: "get", DatasetGatesBusSave: "send" };
const TEXT_GATE = "DatasetGatesTextGate";
/** The gate nodes, by type: the property holding each one's controller, and its pauses' kind. */
const GATES = { ImageGate: { key: "dgGate", kind: "image" }, [TEXT_GATE]: { key: "dgText", kind: "text" } };
/** Other tabs' pauses reach this one only through GET /pending: asked this often while the
 *  tab is visible and its graph has a gate (or a pause is shown). */
const POLL_MS = 3000;

/** This tab's pauses and other tabs', the nodes that show them, and the page's slot browsers
 *  and pickers. */
class DatasetGates {
  constructor(app) {
    this.app = app;
    /** This tab's pauses (with their tokens), by node path, until their done event. */
    this.waiting = new Map();
    /** Pauses of other tabs (no token), by node path: the node shows a notice. */
    this.elsewhere = new Map();
    /** Tokens whose done event came: a slow GET /pending must not bring them back. */
    this.finished = new Set();
    /** Tokens already told about: a pause whose node is not in the graph on screen (a resumed
     *  parked slot, or another workflow's run) gets one toast, not one per poll. */
    this.toldMissing = new Set();
    /** Flashes the title (or beeps) while `waiting` holds any pause: one alert for all of them. */
    this.pauseAlert = new PauseAlert({ mode: () => app.extensionManager?.setting?.get?.(PAUSE_ALERT_SETTING) });
    this.asking = null; // the GET /pending in flight
    this.askAgain = false; // asked for meanwhile: ask once more after it
    this.browsers = new SlotBrowsers();
    this.picker = new SlotPicker();
  }

  /** The controller of the gate at `path`, if it is a gate (of the pause's `kind`, when given). */
  controllerAt(path, kind = null) {
    const node = findNodeByPath(this.app, path);
    const gate = GATES[node?.type];
    return gate && (!kind || kind === gate.kind) ? node[gate.key] ?? null : null;
  }

  /** A GateController for a new Image Gate node. */
  gate(node) {
    return new GateController(this.app, node, {
      claimed: (data) => this.claimed(data), refresh: () => this.syncPending(), picker: this.picker,
    });
  }

  /** A TextGateController for a new Text Gate node. */
  textGate(node) {
    return new TextGateController(this.app, node, { claimed: (data) => this.claimed(data), refresh: () => this.syncPending() });
  }

  showPause(data) {
    if (!data.token) {
      this.showElsewhere(data);
      return;
    }
    if (this.finished.has(data.token)) return;
    this.elsewhere.delete(data.node);
    this.waiting.set(data.node, data);
    this.pauseAlert.update(true);
    const controller = this.controllerAt(data.node, data.kind);
    if (controller) controller.pause(data);
    else this.missingNode(data);
  }

  missingNode(data) {
    if (this.toldMissing.has(data.token) || findNodeByPath(this.app, data.node)) return;
    this.toldMissing.add(data.token);
    const kind = data.kind === "text" ? "Text Gate" : "Image Gate";
    this.app.extensionManager?.toast?.add?.({
      severity: "info", summary: `${kind} is waiting`,
      detail: `Gate ${data.node} of prompt ${data.prompt_id ?? "?"} waits for an answer in this tab, but the graph `
        + `on screen has no such ${kind}: open the workflow it came from to answer it.`,
      life: 10000,
    });
  }

  /** A pause this tab may not answer: a notice, with "Take over" once its tab is gone. */
  showElsewhere(data) {
    this.waiting.delete(data.node); // if it was ours, another tab took it over
    this.pauseAlert.update(this.waiting.size > 0);
    this.elsewhere.set(data.node, data);
    this.controllerAt(data.node, data.kind)?.elsewhere(data);
  }

  showDone(data) {
    this.finished.add(data.token);
    if (this.waiting.get(data.node)?.token === data.token) this.waiting.delete(data.node);
    this.pauseAlert.update(this.waiting.size > 0);
    this.controllerAt(data.node)?.done(data);
    const other = this.elsewhere.get(data.node); // a pause queued without a tab ends for everyone
    if (other) {
      this.elsewhere.delete(data.node);
      this.controllerAt(data.node)?.elsewhereOver(pauseKey(other));
    }
  }

  /** Ask the server which gates wait: after a reload, a reconnect, a graph load, and by poll. */
  async askPending() {
    const { waiting, elsewhere } = this;
    // Only pauses known before asking can be declared over: one that arrives while the request
    // is in flight is missing from its (older) answer.
    const known = new Set([...waiting.values()].map((data) => data.token));
    const knownElsewhere = new Set([...elsewhere.values()].map(pauseKey));
    let pending;
    try {
      pending = await comfyGate.pending();
    } catch (err) {
      console.warn("[Dataset Gates] could not ask for pending gates:", err);
      return;
    }
    if (pending === null) return; // this tab's client id is not known yet
    for (const data of pending) {
      const mine = waiting.get(data.node);
      if (!data.token && mine && !known.has(mine.token)) continue; // ours since we asked (a take-over)
      this.showPause(data);
    }
    const live = new Set(pending.map((p) => p.token ?? pauseKey(p)));
    for (const [path, data] of waiting) {
      if (live.has(data.token) || !known.has(data.token)) continue;
      waiting.delete(path);
      this.controllerAt(path)?.expire(data.token);
    }
    this.pauseAlert.update(waiting.size > 0);
    for (const [path, data] of elsewhere) {
      const key = pauseKey(data);
      if (live.has(key) || !knownElsewhere.has(key)) continue;
      elsewhere.delete(path);
      this.controllerAt(path)?.elsewhereOver(key);
    }
  }

  /** askPending, one request at a time; a call while one is out asks once more after it. */
  syncPending() {
    if (this.asking) {
      this.askAgain = true;
      return this.asking;
    }
    this.asking = this.askPending().finally(() => {
      this.asking = null;
      if (this.askAgain) {
        this.askAgain = false;
        this.syncPending();
      }
    });
    return this.asking;
  }

  pollPending() {
    if (document.visibilityState !== "visible") return;
    const gates = Object.keys(GATES).some((type) => hasNodeOfType(this.app, type));
    if (this.waiting.size || this.elsewhere.size || gates) this.syncPending();
  }

  /** This tab took a pause over: it is ours now, under its new token. */
  claimed(data) {
    this.showPause(data);
  }

  afterEveryRun() {
    this.picker.refresh();
    this.browsers.refresh();
  }

  /** Listen to the server and start the poll (the extension's setup). */
  start() {
    ensureStylesheet("gate", new URL("./gate.css", import.meta.url));
    api.addEventListener(PAUSE_EVENT, ({ detail }) => this.showPause(detail));
    api.addEventListener(DONE_EVENT, ({ detail }) => this.showDone(detail));
    for (const type of ["execution_success", "execution_error", "execution_interrupted"]) {
      api.addEventListener(type, () => this.afterEveryRun());
    }
    api.addEventListener("reconnected", () => this.syncPending());
    // The first status message tells a fresh tab its client id.
    const onStatus = () => {
      api.removeEventListener("status", onStatus);
      this.syncPending();
    };
    api.addEventListener("status", onStatus);
    this.browsers.registerTab(this.app);
    setInterval(() => this.pollPending(), POLL_MS);
    document.addEventListener("visibilitychange", () => this.pollPending());
    this.syncPending();
  }

  /** A graph was (re)loaded: its gate nodes are new objects, so show known pauses again. */
  graphLoaded() {
    for (const data of this.waiting.values()) this.controllerAt(data.node, data.kind)?.pause(data);
    for (const data of this.elsewhere.values()) this.controllerAt(data.node, data.kind)?.elsewhere(data);
    this.syncPending();
  }
}

function chain(proto, name, after) {
  const original = proto[name];
  proto[name] = function (...args) {
    const result = original?.apply(this, args);
    after.call(this, ...args);
    return result;
  };
}

const gates = new DatasetGates(app);

app.registerExtension({
  name: "DatasetGates.ImageGate",
  settings: [{
    id: PAINTER_SETTING,
    category: ["Dataset Gates", "Mask", "Painter"],
    name: "Image Gate: paint masks with",
    tooltip: "ComfyUI's MaskEditor (falls back to the built-in brush if it cannot open) or the built-in brush",
    type: "combo",
    options: [PAINTER_EDITOR, PAINTER_BRUSH],
    defaultValue: PAINTER_EDITOR,
  }, PAUSE_ALERT_SETTING_DEF],
  commands: [{
    id: OPEN_COMMAND, icon: "pi pi-images", label: "Dataset Gates: slot browser", function: () => gates.browsers.toggleFloating(),
  }],
  menuCommands: [{ path: ["Extensions", "Dataset Gates"], commands: [OPEN_COMMAND] }],

  async setup() {
    gates.start();
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name === "ImageGate") {
      chain(nodeType.prototype, "onNodeCreated", function () {
        this.dgGate = gates.gate(this);
      });
      chain(nodeType.prototype, "onConfigure", function () {
        this.dgGate?.sync({ loading: true });
      });
    } else if (nodeData.name === TEXT_GATE) {
      chain(nodeType.prototype, "onNodeCreated", function () {
        this.dgText = gates.textGate(this);
      });
    } else if (nodeData.name in BUS_NODES) {
      chain(nodeType.prototype, "onNodeCreated", function () {
        gates.picker.addButton(this, "slot_id", BUS_NODES[nodeData.name]);
      });
    } else if (nodeData.name in DATASET_NODES) {
      chain(nodeType.prototype, "onNodeCreated", function () {
        this.dgDataset = new DatasetController(this, nodeData.name);
      });
      // ComfyUI hands a node its run's UI output ({dg_dataset: [...]}) from the "executed" event.
      chain(nodeType.prototype, "onExecuted", function (output) {
        this.dgDataset?.show(output);
      });
    }
  },

  async afterConfigureGraph() {
    gates.graphLoaded();
  },
});
