// The Image Gate's panel inside the node: preview with batch paging and mask overlay, one
// button per route, mask tools and Stop while paused; the route taken and "Run from here"
// after a choice; a notice (and "Take over" once its tab is gone) while another tab's pause
// waits here; route labels and slot pickers always. A view only: it reports clicks and
// keys to its handlers and draws the model it is given. No side effects.
import { el } from "./format.js";
import { labelOf } from "./gate_outputs.js";

export const PREVIEW_MIN = 120;
const GAP = 6;

/**
 * @typedef {object} PanelModel
 * @property {"idle"|"paused"|"decided"|"elsewhere"} mode  elsewhere: another tab's pause
 * @property {object|null} pause   the server's pause event
 * @property {number} index        the batch image shown
 * @property {string|null} previewUrl
 * @property {string|null} overlayUrl  tinted mask over the shown image
 * @property {string[]} labels     the user's labels, one per route
 * @property {number} routes       the routes widget
 * @property {boolean} orphaned    another tab's pause whose tab is gone: offer "Take over"
 * @property {boolean} busy        requests in flight: route buttons wait
 * @property {string} status       the first line
 * @property {string} note         mask state, errors
 * @property {boolean} noteIsError
 * @property {number|null} decided the route taken (0 = stopped)
 */

export class GatePanel {
  /** @param {Record<string, Function>} on choose, stop, editMask, clearMask, page, runAgain, takeOver, pickSlot, labelChanged */
  constructor(on) {
    this.on = on;
    this.model = null;
    this.status = el("div.dg-gate-status");
    this.image = el("img.dg-preview-img", { alt: "gate preview", draggable: false });
    this.overlay = el("img.dg-overlay", { alt: "", draggable: false, hidden: true });
    this.preview = el("div.dg-preview", { hidden: true, onclick: () => this.root.focus({ preventScroll: true }) },
      this.image, this.overlay);
    this.pageLabel = el("span.dg-page-label");
    this.prev = el("button.dg-btn.dg-prev", { type: "button", title: "Previous image (←)", onclick: () => on.page(-1) }, "◀");
    this.next = el("button.dg-btn.dg-next", { type: "button", title: "Next image (→)", onclick: () => on.page(1) }, "▶");
    this.pager = el("div.dg-pager", { hidden: true }, this.prev, this.pageLabel, this.next);
    this.routeRow = el("div.dg-routes", { hidden: true });
    this.editMask = el("button.dg-btn.dg-edit-mask", { type: "button", onclick: () => on.editMask() }, "Edit mask");
    this.clearMask = el("button.dg-btn.dg-clear-mask", { type: "button", onclick: () => on.clearMask() }, "Clear mask");
    this.stop = el("button.dg-btn.dg-danger.dg-stop", { type: "button", title: "Stop the run (Esc)", onclick: () => on.stop() }, "Stop");
    this.runAgain = el("button.dg-btn.dg-primary.dg-run", { type: "button", onclick: () => on.runAgain() }, "▶ Run from here");
    this.takeOver = el("button.dg-btn.dg-primary.dg-take-over", {
      type: "button", title: "Answer this pause here: its tab is gone", onclick: () => on.takeOver(),
    }, "Take over");
    this.tools = el("div.dg-tools", {}, this.editMask, this.clearMask, el("span.dg-grow"), this.stop, this.runAgain,
      this.takeOver);
    this.note = el("div.dg-gate-note");
    this.labelRows = el("div.dg-label-rows");
    this.labels = el("details.dg-labels", { ontoggle: () => on.layout() },
      el("summary", {}, "Route labels"), this.labelRows);
    this.slots = el("div.dg-slot-buttons",
      el("button.dg-btn.dg-pick-get", { type: "button", title: "Pick the slot to load when no image is wired",
        onclick: (e) => on.pickSlot("get_id", e.currentTarget) }, "get_id ▾"),
      el("button.dg-btn.dg-pick-send", { type: "button", title: "Existing slot ids (send_id replaces one)",
        onclick: (e) => on.pickSlot("send_id", e.currentTarget) }, "send_id ▾"));
    this.root = el("div.dg-root.dg-gate", { tabIndex: 0 },
      this.status, this.preview, this.pager, this.routeRow, this.tools, this.note, this.labels, this.slots);
    this.root.addEventListener("keydown", (event) => this.onKey(event));
    this.image.addEventListener("load", () => on.layout());
  }

  get element() {
    return this.root;
  }

  /** @param {PanelModel} m */
  render(m) {
    const before = this.model;
    this.model = m;
    const paused = m.mode === "paused";
    const showing = m.mode !== "idle" && Boolean(m.previewUrl);
    this.root.dataset.mode = m.mode;
    this.status.textContent = m.status;
    this.preview.hidden = !showing;
    this.preview.classList.toggle("dg-dim", m.mode === "decided");
    if (showing && this.image.getAttribute("src") !== m.previewUrl) this.image.src = m.previewUrl;
    this.overlay.hidden = !(showing && m.overlayUrl);
    if (m.overlayUrl && this.overlay.getAttribute("src") !== m.overlayUrl) this.overlay.src = m.overlayUrl;
    const batch = m.pause?.batch ?? 1;
    this.pager.hidden = !(paused && batch > 1);
    this.pageLabel.textContent = `${m.index + 1} / ${batch}`;
    this.prev.disabled = m.index <= 0;
    this.next.disabled = m.index >= batch - 1;
    this.routeRow.hidden = !paused;
    if (paused && (before?.pause !== m.pause || this.routeRow.childElementCount !== m.pause.routes)) {
      this.routeRow.replaceChildren(...this.routeButtons(m.pause));
    }
    for (const button of this.routeRow.children) button.disabled = m.busy;
    for (const b of [this.editMask, this.clearMask, this.stop]) b.hidden = !paused;
    this.runAgain.hidden = m.mode !== "decided";
    this.takeOver.hidden = !(m.mode === "elsewhere" && m.orphaned);
    this.takeOver.disabled = m.busy;
    this.tools.hidden = m.mode === "idle" || (m.mode === "elsewhere" && !m.orphaned);
    this.note.textContent = m.note;
    this.note.hidden = !m.note;
    this.note.classList.toggle("dg-error", Boolean(m.noteIsError));
    this.renderLabels(m.labels, m.routes);
  }

  routeButtons(pause) {
    const labels = pause.labels ?? [];
    return Array.from({ length: pause.routes }, (_, i) => {
      const route = i + 1;
      const key = route === 10 ? "0" : String(route);
      return el("button.dg-btn.dg-route", {
        type: "button", dataset: { route: String(route) }, title: `Send down route ${route} (key ${key})`,
        onclick: () => this.on.choose(route),
      }, el("kbd.dg-key", {}, key), el("span.dg-route-name", {}, labelOf(labels, route) || `route ${route}`));
    });
  }

  renderLabels(labels, routes) {
    if (this.labelRows.childElementCount !== routes) {
      this.labelRows.replaceChildren(...Array.from({ length: routes }, (_, i) => el("label.dg-label-row", {},
        el("span.dg-muted", {}, `route_${i + 1}`),
        el("input.dg-label-input", {
          type: "text", placeholder: `route ${i + 1}`, spellcheck: false, dataset: { route: String(i + 1) },
          onchange: (e) => this.on.labelChanged(i + 1, e.target.value),
          onkeydown: (e) => { e.stopPropagation(); if (e.key === "Enter") e.target.blur(); },
        }))));
    }
    for (const input of this.labelRows.querySelectorAll("input")) {
      const value = labels[Number(input.dataset.route) - 1] ?? "";
      if (document.activeElement !== input && input.value !== value) input.value = value;
    }
  }

  onKey(event) {
    const m = this.model;
    if (!m || m.mode !== "paused" || event.target.closest("input, textarea, details")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    let act = null;
    if (/^[0-9]$/.test(event.key)) {
      const route = event.key === "0" ? 10 : Number(event.key);
      if (route <= m.pause.routes && !m.busy) act = () => this.on.choose(route);
      else if (route <= m.pause.routes) act = () => {}; // swallow while a mask uploads
    } else if (event.key === "Escape") act = () => this.on.stop();
    else if (event.key === "ArrowLeft") act = () => this.on.page(-1);
    else if (event.key === "ArrowRight") act = () => this.on.page(1);
    if (!act) return;
    event.preventDefault();
    event.stopPropagation(); // ComfyUI's own shortcuts (Esc leaves a subgraph) must not fire
    act();
  }

  focus() {
    this.root.focus({ preventScroll: true });
  }

  /** The panel's smallest comfortable height in canvas units (measured when on screen). */
  minHeight() {
    const showing = !this.preview.hidden;
    const parts = [...this.root.children].filter((c) => !c.hidden && c !== this.preview);
    if (this.root.isConnected && this.root.offsetParent !== null) {
      const fixed = parts.reduce((sum, c) => sum + c.offsetHeight + GAP, 8);
      return Math.ceil(fixed + (showing ? PREVIEW_MIN : 0));
    }
    const rows = parts.length + (this.labels.open ? (this.model?.routes ?? 2) : 0);
    return rows * 32 + (showing ? PREVIEW_MIN : 0) + 8;
  }
}
