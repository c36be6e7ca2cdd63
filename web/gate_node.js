// One Image Gate node in the page: its panel, its outputs and labels, its kept masks, the
// batch grid's selection and per-image routes, the countdown, and what happens on pause /
// done events and on clicks. The extension entry creates one GateController per node
// (node.dgGate). No side effects at import.
import { gateApi, pauseKey } from "./gate_api.js";
import {
  DEFAULT_ROUTE, GridSelection, THUMB_SIDE, clock, gridColumns, normalisePreselect, onTimeoutText, routeCounts,
  routesToSend, secondsLeft, singleRoute,
} from "./gate_grid.js";
import {
  cleanLabel, hideLabelsWidget, readLabels, routeCount, routeTitle, syncOutputs, widgetByName, writeLabels,
} from "./gate_outputs.js";
import { GatePanel, PREVIEW_MIN } from "./gate_panel.js";
import { HttpError } from "./http.js";
import { ALL, MaskKeeper, maskToPng } from "./mask_data.js";
import { paintMask } from "./mask_editor_bridge.js";
import { openSlotPicker, setWidget } from "./slot_picker.js";

const PREVIEW_MAX = 420;
const GRID_MAX = PREVIEW_MAX; // the grid grows the node up to this height, and scrolls beyond
const CELL_MIN = 56; // a grid thumbnail's smallest width: the node widens to fit a row of them
const TICK_MS = 250;

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the image did not load"));
    img.src = src;
  });
}

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
    this.index = 0; // the batch image shown enlarged
    this.view = "single"; // a batch: "grid" of thumbnails, or "single" (one image enlarged)
    this.selection = new GridSelection(0);
    this.assigned = []; // per batch image: its own route, or null (DEFAULT_ROUTE on Send)
    this.held = null; // the token whose countdown a click stopped
    this.timer = null;
    this.pausedAt = 0; // performance.now() when this pause reached the page
    this.gridMs = null; // pause to every thumbnail loaded, for the last grid
    this.busy = 0;
    this.decided = null;
    this.decidedRoutes = null; // per image, when the done event or our answer said
    this.timedOut = false; // the done event said the countdown ran out
    this.answeredToken = null;
    this.expired = null; // the pause a GET /pending answer called over: its done event may follow
    this.masks = new MaskKeeper(); // kept across runs
    this.message = "";
    this.messageIsError = false;
    this.panel = new GatePanel({
      choose: (route) => this.route(route),
      send: () => this.send(),
      stop: () => this.stop(),
      editMask: () => this.editMask(),
      clearMask: () => this.clearMask(),
      page: (step) => this.page(step),
      cell: (index, keys) => this.select(() => this.selection.click(index, keys)),
      move: (step, keys) => this.select(() => this.selection.move(step, keys)),
      selectAll: () => this.select(() => this.selection.all()),
      selectNone: () => this.select(() => this.selection.clear()),
      enlarge: (index) => this.enlarge(index),
      showGrid: () => this.showGrid(),
      touch: () => this.hold(),
      gridLoaded: () => this.gridLoaded(),
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
    // A countdown stopped here stays stopped, whatever an older GET /pending answer says.
    this.info = this.held === data.token ? { ...data, deadline: null } : data;
    this.other = null;
    this.expired = null;
    this.mode = "paused";
    this.decided = null;
    this.decidedRoutes = null;
    if (fresh) {
      const batch = Math.max(1, data.batch ?? 1);
      this.pausedAt = performance.now();
      this.gridMs = null;
      this.index = 0;
      this.view = batch > 1 ? "grid" : "single";
      this.selection.reset(batch);
      this.assigned = normalisePreselect(data.preselect, batch, data.routes);
      this.say("");
    }
    this.tick();
    this.render();
    this.fit({ grow: true });
    if (fresh) this.autoFocus();
    if (fresh && this.masks.size) this.pushMasks({ clearFirst: false, what: "Re-sending the kept mask…" });
  }

  done(data) {
    // The server drops a pause from GET /pending before its done event goes out (a timed-out
    // gate parks its batch in between), so a poll's answer can call the pause over first:
    // its done event still says how it ended.
    const late = !this.info && this.mode === "idle" && this.expired?.token === data.token;
    if (late) this.info = this.expired;
    this.expired = null;
    if (!this.info || data.token !== this.info.token) return;
    this.decide(data.route, Array.isArray(data.routes) ? data.routes : null, data);
    if (late) this.fit({ grow: true });
  }

  /** The server no longer waits on `token` (answered elsewhere, taken over, run ended). */
  expire(token, reason = "That pause is over: the run ended or was answered elsewhere.") {
    if (this.info?.token !== token || this.mode !== "paused") return;
    this.expired = this.info;
    this.mode = "idle";
    this.info = null;
    this.tick();
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
    this.expired = null;
    this.decided = null;
    this.mode = "elsewhere";
    this.tick();
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
      if (err instanceof HttpError && err.status === 409) {
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

  get batch() {
    return Math.max(1, this.info?.batch ?? 1);
  }

  /** The images a route or a mask applies to: the enlarged one of a batch, else the
   *  selection (empty: the whole batch). */
  targets() {
    if (this.batch > 1 && this.view === "single") return [this.index];
    return this.selection.list();
  }

  /**
   * A route button or key: with images selected (or one enlarged) they get that route and the
   * enlarged view moves on to the next image; with nothing selected the whole batch goes down
   * it at once, as a gate without a grid does.
   */
  route(route) {
    if (this.mode !== "paused" || this.busy) return; // a mask upload must not be overtaken
    const targets = this.targets();
    if (!targets.length) {
      this.choose(route);
      return;
    }
    for (const i of targets) this.assigned[i] = route;
    if (this.view === "single" && this.index < this.batch - 1) this.page(1);
    else this.render();
  }

  async choose(route) {
    if (this.busy) return;
    const routes = Array(this.batch).fill(route);
    await this.answer("Choosing", route, routes, (node, token) => gateApi.choose(node, token, route));
  }

  /** Send (Enter): one route per image, the default route where an image has none. */
  async send() {
    if (this.mode !== "paused" || this.busy || !this.canSend()) return;
    const routes = routesToSend(this.assigned);
    await this.answer("Sending", singleRoute(routes), routes,
      (node, token) => gateApi.chooseEach(node, token, routes));
  }

  canSend() {
    return this.batch > 1 || this.assigned.some((r) => r !== null);
  }

  stop() {
    return this.answer("Stop", null, null, (node, token) => gateApi.stop(node, token));
  }

  /** Send this pause's answer (route null = Stop); a pause event for it meanwhile is ignored. */
  async answer(what, route, routes, send) {
    if (this.mode !== "paused") return;
    const { node, token } = this.info;
    this.answeredToken = token;
    const ok = await this.request(what, () => send(node, token));
    if (ok) this.decide(route, routes);
    else this.answeredToken = null;
  }

  decide(route, routes = null, done = null) {
    this.mode = "decided";
    this.decided = route ?? 0;
    if (routes?.length === this.batch && (route || routes.some(Boolean))) {
      this.decidedRoutes = routes;
      this.assigned = [...routes];
    }
    this.timedOut = Boolean(done?.timed_out);
    this.selection.clear();
    this.tick();
    this.say(done?.parked ? `Parked in slot ${done.parked}: resume it from the slot browser.` : "");
    this.render();
  }

  page(step) {
    if (this.mode !== "paused") return;
    const next = this.index + step;
    if (next < 0 || next >= this.batch) return;
    this.index = next;
    if (this.view === "single") this.selection.only(next);
    this.render();
  }

  /** A change of selection (clicks, arrows, select all / none) on the grid. */
  select(change) {
    if (this.mode !== "paused" || this.view !== "grid") return;
    change();
    this.index = this.selection.cursor;
    this.render();
  }

  /** One image of the batch enlarged (with paging); route keys then route that image. */
  enlarge(index) {
    if (this.mode !== "paused" || this.batch < 2) return;
    this.index = Math.min(this.batch - 1, Math.max(0, index));
    this.selection.only(this.index);
    this.view = "single";
    this.render();
    this.fit({ grow: true });
  }

  showGrid() {
    if (this.batch < 2) return;
    this.view = "grid";
    this.selection.only(this.index);
    this.selection.clear(); // back on the grid with the cursor there, nothing selected
    this.render();
    this.fit({ grow: true });
  }

  gridLoaded() {
    if (this.mode !== "paused" || this.gridMs !== null) return;
    this.gridMs = Math.round(performance.now() - this.pausedAt);
  }

  // -- countdown ---------------------------------------------------------------------------
  /** Keep the countdown ticking while a pause has a deadline; stop it otherwise. */
  tick() {
    const live = this.mode === "paused" && secondsLeft(this.info?.deadline) !== null && this.node.graph;
    if (live && !this.timer) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
    } else if (!live && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    if (live) this.panel.setCountdown(this.countdown());
  }

  countdown() {
    if (this.mode !== "paused") return null;
    if (this.held === this.info.token) {
      return { text: "Countdown stopped: the gate waits for you.", urgent: false };
    }
    const left = secondsLeft(this.info.deadline);
    if (left === null) return null;
    const labels = this.info.labels ?? [];
    const then = onTimeoutText(this.info.on_timeout, (r) => routeTitle(labels, r));
    if (left <= 0) return { text: `Time is up: the gate ${then}…`, urgent: true };
    return { text: `${clock(left)} left, then the gate ${then}. Click here to stay.`, urgent: left <= 10 };
  }

  /** Any click or key in the panel: a person is here, so the countdown stops (POST /hold once). */
  async hold() {
    if (this.mode !== "paused" || this.held === this.info.token || secondsLeft(this.info.deadline) === null) return;
    const { node, token } = this.info;
    this.held = token;
    this.info = { ...this.info, deadline: null };
    this.panel.setCountdown(this.countdown());
    this.tick();
    try {
      await gateApi.hold(node, token);
    } catch (err) {
      // 409: the pause is over (answered, timed out): its done event or GET /pending says so.
      if (err instanceof HttpError && err.status === 409) return;
      if (this.info?.token === token) this.say(`Could not stop the countdown: ${err.message}`, true);
    }
  }

  runAgain() {
    const command = this.app.extensionManager?.command;
    const queued = command ? command.execute("Comfy.QueuePrompt") : this.app.queuePrompt(0);
    const before = this.info?.token ?? null;
    // The new run can pause here before the queue call resolves: then that pause speaks.
    const repaused = () => this.mode === "paused" && this.info?.token !== before;
    Promise.resolve(queued).then(() => repaused() || this.say("Queued: the run will pause here again."),
      (err) => repaused() || this.say(`Could not queue: ${err.message}`, true));
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
  /** The batch images a mask painted now belongs to: the enlarged one, the selected ones, or
   *  (nothing selected, or a single image) every image. */
  maskKeys() {
    return this.batch > 1 ? this.targets() : [];
  }

  /** The full-size preview to paint over: the enlarged image, or the first one masked. */
  async paintingImage(keys) {
    if (this.view === "single") {
      const image = this.panel.image;
      return image.complete && image.naturalWidth ? image : null;
    }
    const { node, token } = this.info;
    try {
      return await loadImage(gateApi.previewUrl(node, token, keys[0] ?? 0));
    } catch {
      return null;
    }
  }

  async editMask() {
    if (this.mode !== "paused") return;
    const keys = this.maskKeys();
    const image = await this.paintingImage(keys);
    if (this.mode !== "paused") return;
    if (!image) {
      this.say("The preview has not loaded yet.", true);
      return;
    }
    const existing = this.masks.maskFor(keys.length ? keys[0] : ALL);
    const which = !keys.length ? (this.batch > 1 ? " · every image" : "")
      : keys.length === 1 ? ` · image ${keys[0] + 1}/${this.batch}` : ` · ${keys.length} images`;
    const title = `Mask · ${this.node.title}${which}`;
    let mask;
    try {
      mask = await paintMask({ app: this.app, node: this.node, image, mask: existing, title });
    } catch (err) { // the MaskEditor failed and is still open
      this.say(err.message, true);
      return;
    }
    this.panel.focus(); // keys pick routes again
    if (!mask) return; // cancelled
    this.masks.keep(keys, mask);
    this.render();
    if (this.mode === "paused") await this.pushMasks({ clearFirst: true, what: "Sending the mask…" });
  }

  /** Make the server's masks for this pause equal the kept ones (route buttons wait). */
  async pushMasks({ clearFirst, what }) {
    const { node, token, batch } = this.info;
    this.say(what);
    const ok = await this.request("Sending the mask", async () => {
      if (clearFirst) await gateApi.clearMask(node, token);
      for (const [index, mask] of this.masks.uploadsFor(batch)) {
        await gateApi.uploadMask(node, token, await maskToPng(mask), index);
      }
      return true;
    });
    if (ok) this.say("");
  }

  async clearMask() {
    this.masks.clear();
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
      const late = this.timedOut ? "Time ran out: " : "";
      if (this.decidedRoutes && !singleRoute(this.decidedRoutes)) {
        return `${late || "Sent: "}${routeCounts(this.decidedRoutes).map(({ route, count }) =>
          `${count} down ${routeTitle(labels, route)}`).join(", ")}`;
      }
      if (this.decided) return `${late}Sent down ${routeTitle(labels, this.decided)}`;
      if (this.timedOut) return this.message.startsWith("Parked") ? "Time ran out: parked, nothing was sent on"
        : "Time ran out: stopped, nothing was sent on";
      return "Stopped: nothing was sent on";
    }
    if (this.mode === "elsewhere") return "A gate is waiting in another tab.";
    return "Image Gate: each run pauses here until you pick a route.";
  }

  maskNote() {
    if (this.mode === "elsewhere") {
      return this.other.orphaned ? "That tab is gone: take the pause over to answer it here."
        : "Answer it in the tab that queued the run.";
    }
    const kept = this.masks.describe();
    if (kept) return kept;
    if (this.mode === "paused" && this.info.painted?.length) return "A mask was painted for this pause.";
    return "";
  }

  /** The grid's model: one cell per batch image (a batch of more than one only). */
  gridModel() {
    const p = this.info;
    if (!p || this.batch < 2 || (this.mode !== "paused" && this.mode !== "decided")) return null;
    return {
      key: p.token,
      columns: gridColumns(this.batch),
      aspect: p.height / Math.max(1, p.width),
      cursor: this.selection.cursor,
      cells: Array.from({ length: this.batch }, (_, i) => ({
        url: gateApi.previewUrl(p.node, p.token, i, THUMB_SIDE),
        route: this.assigned[i] ?? DEFAULT_ROUTE,
        own: this.assigned[i] != null,
        selected: this.mode === "paused" && this.view === "grid" && this.selection.has(i),
        overlay: this.masks.overlayFor(i),
      })),
    };
  }

  hint() {
    if (this.mode !== "paused" || this.batch < 2) return "";
    const labels = this.info.labels ?? [];
    const rest = this.assigned.filter((r) => r === null).length;
    const fallback = rest ? ` (${rest} without a route: ${routeTitle(labels, DEFAULT_ROUTE)})` : "";
    if (this.view === "single") {
      return `A route key routes this image and moves on · Enter sends all${fallback} · Space: all images`;
    }
    const n = this.selection.size;
    if (!n) return "Click, shift- or ctrl-click to select · a route with nothing selected sends the whole batch at once";
    return `${n} selected: a route key routes ${n > 1 ? "them" : "it"} · Enter sends all${fallback}`;
  }

  render() {
    const paused = this.mode === "paused";
    const p = this.info;
    const counts = {};
    if (paused) for (const r of this.assigned) if (r) counts[r] = (counts[r] ?? 0) + 1;
    const shown = this.assigned[this.index];
    const sendRoutes = paused ? routesToSend(this.assigned) : [];
    const labels = p?.labels ?? [];
    this.panel.render({
      mode: this.mode,
      pause: p,
      view: this.view,
      grid: this.gridModel(),
      index: this.index,
      previewUrl: p ? (paused ? gateApi.previewUrl(p.node, p.token, this.index) : this.panel.image.getAttribute("src")) : null,
      overlayUrl: this.masks.overlayFor(this.batch > 1 ? this.index : ALL),
      shownRoute: { route: shown ?? DEFAULT_ROUTE, own: shown != null },
      labels: readLabels(this.node),
      routes: routeCount(this.node),
      counts,
      canSend: paused && this.canSend(),
      sendTitle: `Send (Enter): ${routeCounts(sendRoutes).map(({ route, count }) =>
        `${count} down ${routeTitle(labels, route)}`).join(", ")}`,
      hint: this.hint(),
      countdown: this.countdown(),
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
    let [width, height] = node.size;
    const grid = this.info && this.batch > 1 && this.view === "grid";
    if (grow && grid) width = Math.max(width, gridColumns(this.batch) * (CELL_MIN + 4) + 20);
    let need = node.computeSize()[1];
    if (grow && this.info) {
      const aspect = Math.min(2, Math.max(0.5, this.info.height / Math.max(1, this.info.width)));
      let wanted;
      if (grid) {
        const columns = gridColumns(this.batch);
        const cell = (width - 20 - (columns - 1) * 4) / columns;
        wanted = Math.min(GRID_MAX, Math.ceil(this.batch / columns) * (cell * aspect + 4));
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
