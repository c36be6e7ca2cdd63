// Dataset Gates: the ComfyUI extension entry (the only module here with side effects).
// Wires the Image Gate panel into its nodes, slot pickers into the bus nodes, the pause /
// done socket events into the right node, and the slot browser into the sidebar.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { OPEN_COMMAND, refreshSlotBrowsers, registerSlotBrowserTab, toggleFloatingBrowser } from "./browser_tab.js";
import { ensureStylesheet } from "./format.js";
import { gateApi } from "./gate_api.js";
import { GateController, PAINTER_BRUSH, PAINTER_EDITOR, PAINTER_SETTING } from "./gate_node.js";
import { findNodeByPath } from "./node_lookup.js";
import { addSlotPickerButton, refreshOpenPicker } from "./slot_picker.js";

const PAUSE_EVENT = "datasete_gate.pause";
const DONE_EVENT = "datasete_gate.done";
const BUS_NODES = { DatasetGatesBusLoad: "get", DatasetGatesBusSave: "send" };

/** Pauses this tab was told about, by node path, until their done event. */
const waiting = new Map();
/** Tokens whose done event came: a slow GET /pending must not bring them back. */
const finished = new Set();

function controllerAt(path) {
  const node = findNodeByPath(app, path);
  return node?.type === "ImageGate" ? node.dgGate ?? null : null;
}

function showPause(data) {
  if (finished.has(data.token)) return;
  waiting.set(data.node, data);
  controllerAt(data.node)?.pause(data);
}

function showDone(data) {
  finished.add(data.token);
  if (waiting.get(data.node)?.token === data.token) waiting.delete(data.node);
  controllerAt(data.node)?.done(data);
}

/** Ask the server which gates wait for this tab: after a reload, a reconnect, a graph load. */
async function syncPending() {
  // Only pauses known before asking can be declared over: one that arrives while the request
  // is in flight is missing from its (older) answer.
  const known = new Set([...waiting.values()].map((data) => data.token));
  let pending;
  try {
    pending = await gateApi.pending();
  } catch (err) {
    console.warn("[Dataset Gates] could not ask for pending gates:", err);
    return;
  }
  if (pending === null) return; // this tab's client id is not known yet
  const live = new Set(pending.map((p) => p.token));
  for (const [path, data] of waiting) {
    if (live.has(data.token) || !known.has(data.token)) continue;
    waiting.delete(path);
    controllerAt(path)?.expire(data.token);
  }
  for (const data of pending) showPause(data);
}

function afterEveryRun() {
  refreshOpenPicker();
  refreshSlotBrowsers();
}

function chain(proto, name, after) {
  const original = proto[name];
  proto[name] = function (...args) {
    const result = original?.apply(this, args);
    after.call(this, ...args);
    return result;
  };
}

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
  }],
  commands: [{ id: OPEN_COMMAND, icon: "pi pi-images", label: "Dataset Gates: slot browser", function: toggleFloatingBrowser }],
  menuCommands: [{ path: ["Extensions", "Dataset Gates"], commands: [OPEN_COMMAND] }],

  async setup() {
    ensureStylesheet("gate", new URL("./gate.css", import.meta.url));
    api.addEventListener(PAUSE_EVENT, ({ detail }) => showPause(detail));
    api.addEventListener(DONE_EVENT, ({ detail }) => showDone(detail));
    for (const type of ["execution_success", "execution_error", "execution_interrupted"]) {
      api.addEventListener(type, afterEveryRun);
    }
    api.addEventListener("reconnected", syncPending);
    // The first status message tells a fresh tab its client id.
    const onStatus = () => {
      api.removeEventListener("status", onStatus);
      syncPending();
    };
    api.addEventListener("status", onStatus);
    registerSlotBrowserTab(app);
    syncPending();
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name === "ImageGate") {
      chain(nodeType.prototype, "onNodeCreated", function () {
        this.dgGate = new GateController(app, this);
      });
      chain(nodeType.prototype, "onConfigure", function () {
        this.dgGate?.sync({ loading: true });
      });
    } else if (nodeData.name in BUS_NODES) {
      chain(nodeType.prototype, "onNodeCreated", function () {
        addSlotPickerButton(this, "slot_id", BUS_NODES[nodeData.name]);
      });
    }
  },

  async afterConfigureGraph() {
    // A graph was (re)loaded: its gate nodes are new objects, so show known pauses again.
    for (const data of waiting.values()) controllerAt(data.node)?.pause(data);
    syncPending();
  },
});
