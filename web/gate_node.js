// One Image Gate node in the page: its panel, its outputs and labels, its kept masks, and
// what happens on pause / done events and on clicks. The extension entry creates one
// GateController per node (node.dgGate). No side effects at import.
import { GateError, gateApi, pauseKey } from "./gate_api.js";
import {
  cleanLabel, hideLabelsWidget, readLabels, routeCount, routeTitle, syncOutputs, widgetByName, writeLabels,
} from "./gate_outputs.js";
import { GatePanel, PREVIEW_MIN } from "./gate_panel.js";
import { openBrush } from "./mask_brush.js";
import { isEmptyMask, maskToPng, overlayUrl } from "./mask_data.js";
import { editWithMaskEditor, maskEditorAvailable, maskEditorOpen } from "./mask_editor_bridge.js";
import { openSlotPicker, setWidget } from "./slot_picker.js";

export const PAINTER_SETTING = "DatasetGates.MaskPainter";
export const PAINTER_EDITOR = "ComfyUI MaskEditor";
export const PAINTER_BRUSH = "Built-in brush";
const ALL = -1; // a mask for every image of the batch
const PREVIEW_MAX = 420;

export class GateController {
  /**
   * @param {object} hooks  from the extension entry: `claimed(pause)` when this node took a
   *   pause over (the entry tracks it like a pause event), `refresh()` to ask GET /pending now.
   */
  constructor(app, node, hooks = {}) {
    this.app = app;
    this.node = node;
    this.hooks = hooks;
    this.mode = "idle"; // idle | paused | decided | elsewhere (another tab's pause)
    this.info = null;
    this.other = null; // another tab's pause (no token) while mode is "elsewhere"
    this.index = 0;
    this.busy = 0;
    this.decided = null;
    this.answeredToken = null;
    this.masks = new Map(); // batch index (ALL = every image) -> mask canvas, kept across runs
    this.overlays = new Map(); // same keys -> tinted data URL
    this.message = "";
    this.messageIsError = false;
    this.panel = new GatePanel({
      choose: (route) => this.choose(route),
      stop: () => this.stop(),
      editMask: () => this.editMask(),
      clearMask: () => this.clearMask(),
      page: (step) => this.page(step),
      runAgain: () => this.runAgain(),
      takeOver: () => this.takeOver(),
      pickSlot: (name, anchor) => this.pickSlot(name, anchor),
      labelChanged: (route, text) => this.setLabel(route, text),
      layout: () => this.fit({ shrink: this.mode === "idle" }),
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
    const fresh = this.info?.token !== data.token;
    this.info = data;
    this.other = null;
    this.mode = "paused";
    this.decided = null;
    if (fresh) {
      this.index = 0;
      this.say("");
    }
    this.render();
    this.fit({ grow: true });
    if (fresh) this.autoFocus();
    if (fresh && this.masks.size) this.pushMasks({ clearFirst: false, what: "Re-sending the kept mask…" });
  }

  done(data) {
    if (!this.info || data.token !== this.info.token) return;
    this.decide(data.route);
  }

  /** The server no longer waits on `token` (answered elsewhere, taken over, run ended). */
  expire(token, reason = "That pause is over: the run ended or was answered elsewhere.") {
    if (this.info?.token !== token || this.mode !== "paused") return;
    this.mode = "idle";
    this.info = null;
    this.say(reason);
    this.render();
    this.fit({ shrink: true });
  }

  /** Another tab's pause of this node: a notice, and "Take over" once that tab is gone. */
  elsewhere(data) {
    const ours = this.mode === "paused" && this.info && pauseKey(this.info) === pauseKey(data);
    const fresh = !this.other || pauseKey(this.other) !== pauseKey(data);
    this.other = data;
    this.info = null;
    this.decided = null;
    this.mode = "elsewhere";
    if (ours) this.say("Another tab took this pause over.");
    else if (fresh) this.say("");
    this.render();
    this.fit({ shrink: true });
  }

  /** That other tab's pause is no longer waiting. */
  elsewhereOver(key) {
    if (this.mode !== "elsewhere" || pauseKey(this.other) !== key) return;
    this.mode = "idle";
    this.other = null;
    this.say("");
    this.fit({ shrink: true });
  }

  /** Answer an orphaned pause from this tab: it gets a new token, the old tab's is dead. */
  async takeOver() {
    if (this.mode !== "elsewhere" || this.busy) return;
    const { node } = this.other;
    this.busy++;
    this.render();
    let data;
    try {
      data = await gateApi.takeOver(node);
    } catch (err) {
      this.say(`Could not take over: ${err.message}`, true);
      this.hooks.refresh?.();
      return;
    } finally {
      this.busy--;
      this.render();
    }
    if (this.hooks.claimed) this.hooks.claimed(data);
    else this.pause(data);
  }

  // -- actions -----------------------------------------------------------------------------
  async request(what, fn) {
    this.busy++;
    this.render();
    try {
      return await fn();
    } catch (err) {
      if (err instanceof GateError && err.status === 409) {
        this.expire(this.info?.token, `That pause cannot be answered here: ${err.message}`);
        this.hooks.refresh?.(); // a pause of another tab now? then its notice shows
      } else {
        this.say(`${what} failed: ${err.message}`, true);
      }
      return undefined;
    } finally {
      this.busy--;
      this.render();
    }
  }

  async choose(route) {
    if (this.busy) return; // a mask upload is in flight: the route must not overtake it
    await this.answer("Choosing", route, (node, token) => gateApi.choose(node, token, route));
  }

  stop() {
    return this.answer("Stop", null, (node, token) => gateApi.stop(node, token));
  }

  /** Send this pause's answer (route null = Stop); a pause event for it meanwhile is ignored. */
  async answer(what, route, send) {
    if (this.mode !== "paused") return;
    const { node, token } = this.info;
    this.answeredToken = token;
    const ok = await this.request(what, () => send(node, token));
    if (ok) this.decide(route);
    else this.answeredToken = null;
  }

  decide(route) {
    this.mode = "decided";
    this.decided = route ?? 0;
    this.say("");
    this.render();
  }

  page(step) {
    if (this.mode !== "paused") return;
    const next = this.index + step;
    if (next < 0 || next >= this.info.batch) return;
    this.index = next;
    this.render();
  }

  runAgain() {
    const command = this.app.extensionManager?.command;
    const queued = command ? command.execute("Comfy.QueuePrompt") : this.app.queuePrompt(0);
    Promise.resolve(queued).then(() => this.say("Queued: the run will pause here again."),
      (err) => this.say(`Could not queue: ${err.message}`, true));
  }

  pickSlot(name, anchor) {
    const widget = widgetByName(this.node, name);
    if (!widget) return;
    openSlotPicker({
      at: anchor, mode: name === "send_id" ? "send" : "get", title: name, value: String(widget.value ?? ""),
      onPick: (id) => setWidget(this.node, widget, id),
    });
  }

  // -- masks -------------------------------------------------------------------------------
  maskKey() {
    return this.info?.batch > 1 ? this.index : ALL;
  }

  async editMask() {
    const image = this.panel.image;
    if (this.mode !== "paused" || !image.complete || !image.naturalWidth) {
      this.say("The preview has not loaded yet.", true);
      return;
    }
    const key = this.maskKey();
    const existing = this.masks.get(key) ?? this.masks.get(ALL) ?? null;
    const title = `Mask · ${this.node.title}${this.info.batch > 1 ? ` · image ${this.index + 1}/${this.info.batch}` : ""}`;
    let mask;
    const preferEditor = this.app.extensionManager?.setting?.get?.(PAINTER_SETTING) === PAINTER_EDITOR;
    if (preferEditor && maskEditorAvailable(this.app)) {
      try {
        mask = await editWithMaskEditor({ app: this.app, node: this.node, image, mask: existing });
      } catch (err) {
        if (maskEditorOpen()) { // never paint over an editor that is still open
          this.say(`ComfyUI's MaskEditor is still open: ${err.message}`, true);
          return;
        }
        console.warn("[Dataset Gates] MaskEditor failed, using the built-in brush:", err);
        mask = await openBrush({ image, mask: existing, title });
      }
    } else {
      mask = await openBrush({ image, mask: existing, title });
    }
    this.panel.focus(); // keys pick routes again
    if (!mask) return; // cancelled
    if (isEmptyMask(mask)) {
      this.masks.delete(key);
      this.overlays.delete(key);
    } else {
      this.masks.set(key, mask);
      this.overlays.set(key, overlayUrl(mask));
    }
    this.render();
    if (this.mode === "paused") await this.pushMasks({ clearFirst: true, what: "Sending the mask…" });
  }

  /** Make the server's masks for this pause equal the kept ones (route buttons wait). */
  async pushMasks({ clearFirst, what }) {
    const { node, token, batch } = this.info;
    this.say(what);
    const ok = await this.request("Sending the mask", async () => {
      if (clearFirst) await gateApi.clearMask(node, token);
      for (const [key, mask] of this.masks) {
        if (key !== ALL && key >= batch) continue;
        await gateApi.uploadMask(node, token, await maskToPng(mask), key === ALL ? null : key);
      }
      return true;
    });
    if (ok) this.say("");
  }

  async clearMask() {
    this.masks.clear();
    this.overlays.clear();
    if (this.mode === "paused") {
      const { node, token } = this.info;
      const ok = await this.request("Clearing the mask", () => gateApi.clearMask(node, token));
      if (ok) this.info = { ...this.info, painted: [] };
    }
    this.render();
  }

  // -- drawing -----------------------------------------------------------------------------
  say(text, isError = false) {
    this.message = text;
    this.messageIsError = isError;
    this.render();
  }

  statusText() {
    const labels = this.info?.labels ?? readLabels(this.node);
    if (this.mode === "paused") {
      const p = this.info;
      const source = p.source && p.source !== "input" ? ` · ${p.source}` : "";
      return `Paused: pick a route · ${p.width}×${p.height}${p.batch > 1 ? ` · batch of ${p.batch}` : ""}${source}`;
    }
    if (this.mode === "decided") {
      return this.decided ? `Sent down ${routeTitle(labels, this.decided)}` : "Stopped: nothing was sent on";
    }
    if (this.mode === "elsewhere") return "A gate is waiting in another tab.";
    return "Image Gate: each run pauses here until you pick a route.";
  }

  maskNote() {
    if (this.mode === "elsewhere") {
      return this.other.orphaned ? "That tab is gone: take the pause over to answer it here."
        : "Answer it in the tab that queued the run.";
    }
    const kept = [...this.masks.keys()];
    if (kept.length) {
      const where = kept.includes(ALL) ? "every image" : `${kept.length} image${kept.length > 1 ? "s" : ""}`;
      return `Mask painted on ${where}; kept for the next run until cleared.`;
    }
    if (this.mode === "paused" && this.info.painted?.length) return "A mask was painted for this pause.";
    return "";
  }

  render() {
    const paused = this.mode === "paused";
    const p = this.info;
    this.panel.render({
      mode: this.mode,
      pause: p,
      index: this.index,
      previewUrl: p ? (paused ? gateApi.previewUrl(p.node, p.token, this.index) : this.panel.image.getAttribute("src")) : null,
      overlayUrl: this.overlays.get(this.maskKey()) ?? this.overlays.get(ALL) ?? null,
      labels: readLabels(this.node),
      routes: routeCount(this.node),
      orphaned: this.mode === "elsewhere" && Boolean(this.other?.orphaned),
      busy: this.busy > 0,
      status: this.statusText(),
      note: this.message || this.maskNote(),
      noteIsError: Boolean(this.message) && this.messageIsError,
    });
  }

  /** Resize the node to its content: `grow` makes room for the preview, `shrink` drops it. */
  fit({ grow = false, shrink = false } = {}) {
    const node = this.node;
    if (!node.size) return;
    const [width, height] = node.size;
    let need = node.computeSize()[1];
    if (grow && this.info) {
      const aspect = this.info.height / Math.max(1, this.info.width);
      const wanted = Math.min(PREVIEW_MAX, Math.max(PREVIEW_MIN, (width - 20) * aspect));
      need += wanted - PREVIEW_MIN;
    }
    if (height < need || (shrink && height > need)) {
      node.setSize([width, need]);
      node.setDirtyCanvas?.(true, true);
    }
  }

  /** Take the keyboard if nobody else has it; say where the gate is when it is not on screen. */
  autoFocus() {
    if (this.node.graph !== this.app.canvas?.graph) {
      const where = this.node.graph?.name ? ` inside subgraph "${this.node.graph.name}"` : " in another graph";
      this.app.extensionManager?.toast?.add?.({
        severity: "info", summary: "Image Gate is waiting",
        detail: `"${this.node.title}"${where} waits for a route. Open it to choose.`, life: 8000,
      });
      return;
    }
    const active = document.activeElement;
    if (!active || active === document.body || active === this.app.canvas?.canvas) this.panel.focus();
  }
}
