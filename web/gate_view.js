// What one Image Gate's panel shows, and the state it is drawn from: the mode (idle, paused,
// decided, elsewhere), the pause, the grid or the one image enlarged, the selection, each
// batch image's own route and caption (and the caption being edited, with its text from before
// the edit for Esc), the countdown a click stopped, requests in flight and the message;
// and what the panel derives from them (panelModel(): the status line, the hint, the route
// counts, Send's title, the countdown text, the grid's cells, the note). Per-image state lives
// here, one entry per batch image, made anew for each new pause. No DOM and no requests:
// GateController changes it on events and clicks and hands panelModel() to GatePanel. No side
// effects.
import {
  DEFAULT_ROUTE, GridSelection, THUMB_SIDE, gridColumns, normalisePreselect, routeCounts, routesToSend, singleRoute,
} from "./gate_grid.js";
import { routeTitle } from "./gate_outputs.js";
import { ALL } from "./mask_data.js";
import { countdownLine, takePause } from "./pause_view.js";

/** The hint while a caption is edited: its keys (web/gate_captions.js captionKey). */
const CAPTION_HINT = "Tab or Enter: next caption · Shift+Tab: the one before · Shift+Enter: new line · "
  + "Esc: as it was · Ctrl+Enter: Send";

/** "2 down route 1 · keep, 1 down route 2" for the routes a list sends images down. */
function routesText(routes, labels) {
  return routeCounts(routes).map(({ route, count }) => `${count} down ${routeTitle(labels, route)}`).join(", ");
}

export class GateViewModel {
  /**
   * @param {(node: string, token: string, index: number, side?: number) => string} previewUrl
   *   a batch image of a pause (gateApi.previewUrl)
   */
  constructor(previewUrl) {
    this.previewUrl = previewUrl;
    this.mode = "idle"; // idle | paused | decided | elsewhere (another tab's pause)
    this.info = null; // the pause (this tab's, with its token)
    this.expired = null; // the pause a GET /pending answer called over: its done event may follow
    this.other = null; // another tab's pause (no token) while mode is "elsewhere"
    this.index = 0; // the batch image shown enlarged
    this.view = "single"; // a batch: "grid" of thumbnails, or "single" (one image enlarged)
    this.selection = new GridSelection(0);
    this.assigned = []; // per batch image: its own route, or null (DEFAULT_ROUTE on Send)
    this.captions = null; // per batch image: its caption as it stands (null: the pause has none)
    this.shownCaptions = null; // as the pause showed them: a caption that differs was edited
    this.editing = null; // the batch image whose caption is being edited
    this.editStart = ""; // that caption when its editing began: Esc puts it back
    this.held = null; // the token whose countdown a click stopped
    this.busy = 0; // requests in flight: route buttons wait
    this.decided = null;
    this.decidedRoutes = null; // per image, when the done event or our answer said
    this.timedOut = false; // the done event said the countdown ran out
    this.message = "";
    this.messageIsError = false;
  }

  get batch() {
    return Math.max(1, this.info?.batch ?? 1);
  }

  /** A pause of this tab for this node; returns true when it is a new one (not one shown again). */
  showPause(data) {
    const fresh = takePause(this, data);
    this.decidedRoutes = null;
    if (fresh) {
      const batch = Math.max(1, data.batch ?? 1);
      this.index = 0;
      this.view = batch > 1 ? "grid" : "single";
      this.selection.reset(batch);
      this.assigned = normalisePreselect(data.preselect, batch, data.routes);
      const captions = Array.isArray(data.captions) && data.captions.length === batch ? data.captions : null;
      this.captions = captions && [...captions];
      this.shownCaptions = captions && [...captions];
      this.editing = null;
    }
    return fresh;
  }

  // -- captions -----------------------------------------------------------------------------
  /** Start editing image `index`'s caption, which becomes the current image; false when the
   *  pause has no captions (or is over). */
  editCaption(index) {
    if (this.mode !== "paused" || !this.captions || index < 0 || index >= this.batch) return false;
    if (this.editing !== index) {
      this.editing = index;
      this.editStart = this.captions[index];
    }
    this.index = index;
    if (this.view === "grid") this.selection.cursor = index;
    else if (this.batch > 1) this.selection.only(index); // as paging does; one image has no selection
    return true;
  }

  /** The caption being edited is now `text`. */
  typeCaption(text) {
    if (this.editing !== null) this.captions[this.editing] = String(text);
  }

  /** Tab / Enter: the next image's caption (step 1) or the one before (-1); past either end,
   *  editing ends. Returns whether another caption is being edited now. */
  moveCaption(step) {
    if (this.editing === null) return false;
    const next = this.editing + step;
    if (next < 0 || next >= this.batch) {
      this.editing = null;
      return false;
    }
    return this.editCaption(next);
  }

  /** Esc: the caption as it was when its editing began, and editing ends. */
  restoreCaption() {
    if (this.editing === null) return;
    this.captions[this.editing] = this.editStart;
    this.editing = null;
  }

  leaveCaption() {
    this.editing = null;
  }

  captionEdited(index) {
    return Boolean(this.captions) && this.captions[index] !== this.shownCaptions[index];
  }

  /** The captions an answer carries: every image's, as it stands; null without captions. */
  captionsToSend() {
    return this.captions ? [...this.captions] : null;
  }

  /** The pause was answered: `route` (null = stopped), and one route per image when known. */
  decide(route, routes = null, timedOut = false) {
    this.mode = "decided";
    this.decided = route ?? 0;
    if (routes?.length === this.batch && (route || routes.some(Boolean))) {
      this.decidedRoutes = routes;
      this.assigned = [...routes];
    }
    this.timedOut = timedOut;
    this.editing = null;
    this.selection.clear();
  }

  say(text, isError = false) {
    this.message = text;
    this.messageIsError = isError;
  }

  /** The images a route or a mask applies to: the enlarged one of a batch, else the
   *  selection (empty: the whole batch). */
  targets() {
    if (this.batch > 1 && this.view === "single") return [this.index];
    return this.selection.list();
  }

  canSend() {
    return this.batch > 1 || this.assigned.some((r) => r !== null);
  }

  countdown() {
    if (this.mode !== "paused") return null;
    const labels = this.info.labels ?? [];
    return countdownLine(this.info, this.held, (r) => routeTitle(labels, r));
  }

  /** The first line; `nodeLabels` name the routes when no pause does. */
  statusText(nodeLabels) {
    const labels = this.info?.labels ?? nodeLabels;
    if (this.mode === "paused") {
      const p = this.info;
      const source = p.source && p.source !== "input" ? ` · ${p.source}` : "";
      // a dataset page of mixed sizes: each image is shown at its own size, the batch is padding
      const mixed = new Set((p.sizes ?? []).map(([h, w]) => `${w}×${h}`)).size > 1;
      const size = mixed ? "mixed sizes" : `${p.width}×${p.height}`;
      return `Paused: pick a route · ${size}${p.batch > 1 ? ` · batch of ${p.batch}` : ""}${source}`;
    }
    if (this.mode === "decided") {
      const late = this.timedOut ? "Time ran out: " : "";
      if (this.decidedRoutes && !singleRoute(this.decidedRoutes)) {
        return `${late || "Sent: "}${routesText(this.decidedRoutes, labels)}`;
      }
      if (this.decided) return `${late}Sent down ${routeTitle(labels, this.decided)}`;
      if (this.timedOut) return this.message.startsWith("Parked") ? "Time ran out: parked, nothing was sent on"
        : "Time ran out: stopped, nothing was sent on";
      return "Stopped: nothing was sent on";
    }
    if (this.mode === "elsewhere") return "A gate is waiting in another tab.";
    return "Image Gate: each run pauses here until you pick a route.";
  }

  /** The line under the buttons when there is no message: another tab's pause, or the masks. */
  maskNote(masks) {
    if (this.mode === "elsewhere") {
      return this.other.orphaned ? "That tab is gone: take the pause over to answer it here."
        : "Answer it in the tab that queued the run.";
    }
    const kept = masks.describe();
    if (kept) return kept;
    if (this.mode === "paused" && this.info.painted?.length) return "A mask was painted for this pause.";
    return "";
  }

  /** The grid's model: one cell per batch image (a batch of more than one only). */
  gridModel(masks) {
    const p = this.info;
    if (!p || this.batch < 2 || (this.mode !== "paused" && this.mode !== "decided")) return null;
    return {
      key: p.token,
      columns: gridColumns(this.batch),
      aspect: p.height / Math.max(1, p.width),
      cursor: this.selection.cursor,
      cells: Array.from({ length: this.batch }, (_, i) => ({
        url: this.previewUrl(p.node, p.token, i, THUMB_SIDE),
        route: this.assigned[i] ?? DEFAULT_ROUTE,
        own: this.assigned[i] != null,
        selected: this.mode === "paused" && this.view === "grid" && this.selection.has(i),
        overlay: masks.overlayFor(i),
        caption: this.captions?.[i] ?? null,
        edited: this.captionEdited(i),
        editing: this.view === "grid" && this.editing === i,
      })),
    };
  }

  /** The enlarged image's caption, under it (a batch in the grid shows them in the cells). */
  captionModel() {
    const single = this.batch < 2 || this.view === "single";
    if (!this.captions || !single || (this.mode !== "paused" && this.mode !== "decided")) return null;
    const i = this.index;
    return { index: i, text: this.captions[i], edited: this.captionEdited(i), editing: this.editing === i };
  }

  hint() {
    if (this.mode !== "paused") return "";
    if (this.editing !== null) return CAPTION_HINT;
    const captions = this.captions ? " · Tab: edit the caption" : "";
    return this.batch < 2 ? captions.slice(3) : this.batchHint() + captions;
  }

  batchHint() {
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

  /** Images with a route of their own, by route (while paused). */
  counts() {
    const counts = {};
    if (this.mode === "paused") for (const r of this.assigned) if (r) counts[r] = (counts[r] ?? 0) + 1;
    return counts;
  }

  /**
   * What GatePanel draws (its PanelModel).
   * @param {{labels: string[], routes: number, masks: {overlayFor: Function, describe: Function},
   *   shownUrl: string|null}} node  the node's labels and routes widget, its kept masks (a
   *   MaskKeeper) and the image the panel shows now (kept on screen after the pause)
   */
  panelModel({ labels, routes, masks, shownUrl }) {
    const paused = this.mode === "paused";
    const p = this.info;
    const shown = this.assigned[this.index];
    const sendRoutes = paused ? routesToSend(this.assigned) : [];
    return {
      mode: this.mode,
      pause: p,
      view: this.view,
      grid: this.gridModel(masks),
      index: this.index,
      previewUrl: p ? (paused ? this.previewUrl(p.node, p.token, this.index) : shownUrl) : null,
      overlayUrl: masks.overlayFor(this.batch > 1 ? this.index : ALL),
      shownRoute: { route: shown ?? DEFAULT_ROUTE, own: shown != null },
      labels,
      routes,
      counts: this.counts(),
      canSend: paused && this.canSend(),
      sendTitle: `Send (Enter): ${routesText(sendRoutes, p?.labels ?? [])}`,
      hint: this.hint(),
      caption: this.captionModel(),
      hasCaptions: Boolean(this.captions),
      editing: this.editing,
      countdown: this.countdown(),
      orphaned: this.mode === "elsewhere" && Boolean(this.other?.orphaned),
      busy: this.busy > 0,
      status: this.statusText(labels),
      note: this.message || this.maskNote(masks),
      noteIsError: Boolean(this.message) && this.messageIsError,
    };
  }
}
