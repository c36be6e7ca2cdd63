// Dataset Gates: the ComfyUI extension entry (the only module here with side effects).
// Wires the Image Gate panel into its nodes, slot pickers into the bus nodes, the pause /
// done socket events and GET /pending (this tab's pauses, and other tabs') into the right
// node and into the pause alert, and the slot browser into the sidebar.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { OPEN_COMMAND, refreshSlotBrowsers, registerSlotBrowserTab, toggleFloatingBrowser } from "./browser_tab.js";
import { ensureStylesheet } from "./format.js";
import { comfyGate } from "./comfy_api.js";
import { pauseKey } from "./gate_api.js";
import { GateController } from "./gate_node.js";
import { PAINTER_BRUSH, PAINTER_EDITOR, PAINTER_SETTING } from "./mask_editor_bridge.js";
import { findNodeByPath, hasNodeOfType } from "./node_lookup.js";
import { PAUSE_ALERT_SETTING, PAUSE_ALERT_SETTING_DEF, PauseAlert } from "./pause_alert.js";
import { addSlotPickerButton, refreshOpenPicker } from "./slot_picker.js";

const PAUSE_EVENT = "datasete_gate.pause";
const DONE_EVENT = "datasete_gate.done";
const BUS_NODES = { DatasetGatesBusLoad: "get", DatasetGatesBusSave: "send" };
/** Other tabs' pauses reach this one only through GET /pending: asked this often while the
 *  tab is visible and its graph has an Image Gate (or a pause is shown). */
const POLL_MS = 3000;

/** This tab's pauses (with their tokens), by node path, until their done event. */
const waiting = new Map();
/** Pauses of other tabs (no token), by node path: the node shows a notice. */
const elsewhere = new Map();
/** Tokens whose done event came: a slow GET /pending must not bring them back. */
const finished = new Set();
/** Flashes the title (or beeps) while `waiting` holds any pause: one alert for all of them. */
const pauseAlert = new PauseAlert({ mode: () => app.extensionManager?.setting?.get?.(PAUSE_ALERT_SETTING) });

function controllerAt(path) {
  const node = findNodeByPath(app, path);
  return node?.type === "ImageGate" ? node.dgGate ?? null : null;
}

function showPause(data) {
  if (!data.token) {
    showElsewhere(data);
    return;
  }
  if (finished.has(data.token)) return;
  elsewhere.delete(data.node);
  waiting.set(data.node, data);
  pauseAlert.update(true);
  const controller = controllerAt(data.node);
  if (controller) controller.pause(data);
  else missingNode(data);
}

/** Tokens already told about: a pause whose node is not in the graph on screen (a resumed
 *  parked slot, or another workflow's run) gets one toast, not one per poll. */
const toldMissing = new Set();

function missingNode(data) {
  if (toldMissing.has(data.token) || findNodeByPath(app, data.node)) return;
  toldMissing.add(data.token);
  app.extensionManager?.toast?.add?.({
    severity: "info", summary: "Image Gate is waiting",
    detail: `Gate ${data.node} of prompt ${data.prompt_id ?? "?"} waits for a route in this tab, but the graph on `
      + "screen has no such Image Gate: open the workflow it came from to answer it.",
    life: 10000,
  });
}

/** A pause this tab may not answer: a notice, with "Take over" once its tab is gone. */
function showElsewhere(data) {
  waiting.delete(data.node); // if it was ours, another tab took it over
  pauseAlert.update(waiting.size > 0);
  elsewhere.set(data.node, data);
  controllerAt(data.node)?.elsewhere(data);
}

function showDone(data) {
  finished.add(data.token);
  if (waiting.get(data.node)?.token === data.token) waiting.delete(data.node);
  pauseAlert.update(waiting.size > 0);
  controllerAt(data.node)?.done(data);
  const other = elsewhere.get(data.node); // a pause queued without a tab ends for everyone
  if (other) {
    elsewhere.delete(data.node);
    controllerAt(data.node)?.elsewhereOver(pauseKey(other));
  }
}

/** Ask the server which gates wait: after a reload, a reconnect, a graph load, and by poll. */
async function askPending() {
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
    showPause(data);
  }
  const live = new Set(pending.map((p) => p.token ?? pauseKey(p)));
  for (const [path, data] of waiting) {
    if (live.has(data.token) || !known.has(data.token)) continue;
    waiting.delete(path);
    controllerAt(path)?.expire(data.token);
  }
  pauseAlert.update(waiting.size > 0);
  for (const [path, data] of elsewhere) {
    const key = pauseKey(data);
    if (live.has(key) || !knownElsewhere.has(key)) continue;
    elsewhere.delete(path);
    controllerAt(path)?.elsewhereOver(key);
  }
}

let asking = null;
let askAgain = false;

/** askPending, one request at a time; a call while one is out asks once more after it. */
function syncPending() {
  if (asking) {
    askAgain = true;
    return asking;
  }
  asking = askPending().finally(() => {
    asking = null;
    if (askAgain) {
      askAgain = false;
      syncPending();
    }
  });
  return asking;
}

function pollPending() {
  if (document.visibilityState !== "visible") return;
  if (waiting.size || elsewhere.size || hasNodeOfType(app, "ImageGate")) syncPending();
}

/** This tab took a pause over: it is ours now, under its new token. */
function claimed(data) {
  showPause(data);
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
  }, PAUSE_ALERT_SETTING_DEF],
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
    setInterval(pollPending, POLL_MS);
    document.addEventListener("visibilitychange", pollPending);
    syncPending();
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name === "ImageGate") {
      chain(nodeType.prototype, "onNodeCreated", function () {
        this.dgGate = new GateController(app, this, { claimed, refresh: syncPending });
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
    for (const data of elsewhere.values()) controllerAt(data.node)?.elsewhere(data);
    syncPending();
  },
});
