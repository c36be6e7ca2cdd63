// The Image Gate's panel inside the node: at a pause on a batch, a grid of thumbnails to select
// and route image by image (or one image enlarged, with paging), each image's caption when the
// pause has captions (gate_captions.js), one button per route, Send,
// mask tools, Stop and a countdown when the pause has a deadline; the routes taken and "Run
// from here" after a choice; a notice (and "Take over" once its tab is gone) while another
// tab's pause waits here; route labels and slot pickers always. A view only: it reports
// clicks and keys to its handlers and draws the model it is given; it makes no HTTP calls
// (its <img> elements load the URLs the model names). No side effects.
import { el } from "./format.js";
import { CaptionFields } from "./gate_captions.js";
import { labelOf } from "./gate_outputs.js";
import { routeColour } from "./gate_grid.js";
import { ThumbLoader } from "./image_loader.js";
import { drawCountdown } from "./pause_view.js";

export const PREVIEW_MIN = 120;
const GAP = 6;

/**
 * @typedef {object} GridCell
 * @property {string} url          the thumbnail (GET /preview side=160)
 * @property {number} route        the route it goes down on Send
 * @property {boolean} own         the route is its own (assigned or preselected), not the default
 * @property {boolean} selected
 * @property {string|null} overlay tinted mask over it
 * @property {string|null} caption its caption (null: the pause has no captions)
 * @property {boolean} edited      the caption differs from the one the pause showed
 * @property {boolean} editing     the caption is being edited in the cell
 *
 * @typedef {object} GridModel
 * @property {string} key          changes when the cells must be made anew (a new pause)
 * @property {number} columns
 * @property {number} aspect       height / width of the images
 * @property {GridCell[]} cells
 * @property {number} cursor       the image the keys move from
 *
 * @typedef {object} PanelModel
 * @property {"idle"|"paused"|"decided"|"elsewhere"} mode  elsewhere: another tab's pause
 * @property {object|null} pause   the server's pause event
 * @property {"grid"|"single"} view  a batch shows as a grid, or one image enlarged
 * @property {GridModel|null} grid  the batch's thumbnails (a batch of more than one)
 * @property {number} index        the batch image shown enlarged
 * @property {string|null} previewUrl
 * @property {string|null} overlayUrl  tinted mask over the enlarged image
 * @property {{route: number, own: boolean}|null} shownRoute  the enlarged image's route
 * @property {string[]} labels     the user's labels, one per route
 * @property {number} routes       the routes widget
 * @property {Record<number, number>} counts  images with their own route, by route
 * @property {boolean} canSend     Send (Enter) commits the per-image routes
 * @property {string} sendTitle
 * @property {string} hint         how to use the grid, or what is selected
 * @property {{index: number, text: string, edited: boolean, editing: boolean}|null} caption
 *   the enlarged image's caption, under it
 * @property {boolean} hasCaptions  the pause shows captions (Tab edits the current one)
 * @property {number|null} editing  the batch image whose caption is being edited
 * @property {{text: string, urgent: boolean}|null} countdown
 * @property {boolean} orphaned    another tab's pause whose tab is gone: offer "Take over"
 * @property {boolean} busy        requests in flight: route buttons wait
 * @property {string} status       the first line
 * @property {string} note         mask state, errors
 * @property {boolean} noteIsError
 */

export class GatePanel {
  /**
   * @param {Record<string, Function>} on choose(route), send(), stop(), editMask(), clearMask(),
   *   page(step), cell(index, {shift, ctrl}), enlarge(index), showGrid(), move(step, {shift}),
   *   selectAll(), selectNone(), touch() (any click or key while paused), gridLoaded(count),
   *   runAgain(), takeOver(), pickSlot(name, anchor), labelChanged(route, text), layout(),
   *   editCaption(index), typeCaption(text), moveCaption(step), restoreCaption(),
   *   leaveCaption(index), sendCaptions()
   */
  constructor(on) {
    this.on = on;
    this.captions = new CaptionFields({
      edit: (index) => on.editCaption(index), type: (text) => on.typeCaption(text), move: (step) => on.moveCaption(step),
      restore: () => on.restoreCaption(), leave: (index) => on.leaveCaption(index), send: () => on.sendCaptions(),
    });
    this.model = null;
    this.gridKey = null;
    this.cells = [];
    this.loader = new ThumbLoader(() => this.gridLoaded());
    this.status = el("div.dg-gate-status");
    this.countdown = el("div.dg-countdown", { hidden: true, role: "timer" });
    this.thumbs = el("div.dg-thumbs", { hidden: true, role: "listbox", "aria-multiselectable": "true" });
    this.thumbs.addEventListener("click", (event) => this.onThumbClick(event));
    this.thumbs.addEventListener("dblclick", (event) => {
      const cell = event.target.closest(".dg-cell");
      if (cell && !event.target.closest(".dg-cell-editor")) this.on.enlarge(Number(cell.dataset.index));
    });
    this.thumbs.addEventListener("mousedown", (event) => {
      if (event.shiftKey && !event.target.closest(".dg-cell-editor")) event.preventDefault();
    });
    this.image = el("img.dg-preview-img", { alt: "gate preview", draggable: false });
    this.overlay = el("img.dg-overlay", { alt: "", draggable: false, hidden: true });
    this.previewBadge = el("span.dg-cell-badge.dg-preview-badge", { hidden: true });
    this.preview = el("div.dg-preview", { hidden: true, onclick: () => this.root.focus({ preventScroll: true }) },
      this.image, this.overlay, this.previewBadge);
    this.pageLabel = el("span.dg-page-label");
    this.viewToggle = el("button.dg-btn.dg-view-toggle", { type: "button", onclick: () => this.toggleView() });
    this.prev = el("button.dg-btn.dg-prev", { type: "button", title: "Previous image (←)", onclick: () => on.page(-1) }, "◀");
    this.next = el("button.dg-btn.dg-next", { type: "button", title: "Next image (→)", onclick: () => on.page(1) }, "▶");
    this.pager = el("div.dg-pager", { hidden: true }, this.viewToggle, this.prev, this.pageLabel, this.next);
    this.hint = el("div.dg-grid-hint", { hidden: true });
    this.routeRow = el("div.dg-routes", { hidden: true });
    this.editMask = el("button.dg-btn.dg-edit-mask", { type: "button", onclick: () => on.editMask() }, "Edit mask");
    this.clearMask = el("button.dg-btn.dg-clear-mask", { type: "button", onclick: () => on.clearMask() }, "Clear mask");
    this.stop = el("button.dg-btn.dg-danger.dg-stop", { type: "button", title: "Stop the run (Esc)", onclick: () => on.stop() }, "Stop");
    this.send = el("button.dg-btn.dg-primary.dg-send", { type: "button", onclick: () => on.send() },
      "Send ", el("kbd.dg-key", {}, "Enter"));
    this.runAgain = el("button.dg-btn.dg-primary.dg-run", { type: "button", onclick: () => on.runAgain() }, "▶ Run from here");
    this.takeOver = el("button.dg-btn.dg-primary.dg-take-over", {
      type: "button", title: "Answer this pause here: its tab is gone", onclick: () => on.takeOver(),
    }, "Take over");
    this.tools = el("div.dg-tools", {}, this.editMask, this.clearMask, el("span.dg-grow"), this.stop, this.send,
      this.runAgain, this.takeOver);
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
      this.status, this.countdown, this.thumbs, this.preview, this.captions.single, this.pager, this.hint,
      this.routeRow, this.tools,
      this.note, this.labels, this.slots);
    this.root.addEventListener("keydown", (event) => this.onKey(event));
    // Any click or key in the panel means a person is here: the countdown stops.
    this.root.addEventListener("pointerdown", () => this.touched(), true);
    this.root.addEventListener("keydown", () => this.touched(), true);
    this.image.addEventListener("load", () => on.layout());
  }

  get element() {
    return this.root;
  }

  touched() {
    if (this.model?.mode === "paused") this.on.touch?.();
  }

  /** @param {PanelModel} m */
  render(m) {
    const hadFocus = this.root.contains(document.activeElement);
    this.draw(m);
    // A focused button that was just disabled or hidden (▶ on the last image) drops the focus
    // to the page: keep the keys on the panel.
    if (hadFocus && !this.root.contains(document.activeElement) && this.root.isConnected) this.focus();
  }

  /** @param {PanelModel} m */
  draw(m) {
    const before = this.model;
    this.model = m;
    const paused = m.mode === "paused";
    const grid = m.grid && (m.mode === "paused" || m.mode === "decided") ? m.grid : null;
    const single = !grid || m.view === "single";
    const showing = single && m.mode !== "idle" && Boolean(m.previewUrl);
    this.root.dataset.mode = m.mode;
    this.root.dataset.view = grid ? m.view : "single";
    this.status.textContent = m.status;
    this.setCountdown(paused ? m.countdown : null);

    this.renderGrid(grid);
    this.thumbs.hidden = !grid || !!single;
    this.thumbs.classList.toggle("dg-dim", m.mode === "decided");

    this.preview.hidden = !showing;
    this.preview.classList.toggle("dg-dim", m.mode === "decided");
    if (showing && this.image.getAttribute("src") !== m.previewUrl) this.image.src = m.previewUrl;
    this.overlay.hidden = !(showing && m.overlayUrl);
    if (m.overlayUrl && this.overlay.getAttribute("src") !== m.overlayUrl) this.overlay.src = m.overlayUrl;
    this.drawBadge(this.previewBadge, showing && grid ? m.shownRoute : null, m.labels);
    this.captions.drawSingle(showing ? m.caption : null, paused);

    const batch = m.pause?.batch ?? 1;
    this.pager.hidden = !(grid && paused);
    this.viewToggle.textContent = single ? "▦ All images" : "⤢ Enlarge";
    this.viewToggle.title = single ? "Back to the grid (Space)" : "Show the current image enlarged (Space, or double-click)";
    for (const b of [this.prev, this.next]) b.hidden = !single;
    const selected = grid ? grid.cells.filter((c) => c.selected).length : 0;
    this.pageLabel.textContent = single ? `${m.index + 1} / ${batch}`
      : `${batch} images${selected ? ` · ${selected} selected` : ""}`;
    this.prev.disabled = m.index <= 0;
    this.next.disabled = m.index >= batch - 1;
    this.hint.hidden = !(paused && m.hint);
    this.hint.textContent = m.hint ?? "";

    this.routeRow.hidden = !paused;
    if (paused && (before?.pause !== m.pause || this.routeRow.childElementCount !== m.pause.routes)) {
      this.routeRow.replaceChildren(...this.routeButtons(m.pause));
    }
    for (const button of this.routeRow.children) {
      button.disabled = m.busy;
      const count = m.counts?.[Number(button.dataset.route)] ?? 0;
      const badge = button.querySelector(".dg-route-count");
      badge.textContent = count ? `×${count}` : "";
      badge.hidden = !count;
    }
    for (const b of [this.editMask, this.clearMask, this.stop]) b.hidden = !paused;
    this.send.hidden = !(paused && m.canSend);
    this.send.disabled = m.busy;
    this.send.title = m.sendTitle ?? "";
    this.runAgain.hidden = m.mode !== "decided";
    this.takeOver.hidden = !(m.mode === "elsewhere" && m.orphaned);
    this.takeOver.disabled = m.busy;
    this.tools.hidden = m.mode === "idle" || (m.mode === "elsewhere" && !m.orphaned);
    this.note.textContent = m.note;
    this.note.hidden = !m.note;
    this.note.classList.toggle("dg-error", Boolean(m.noteIsError));
    this.renderLabels(m.labels, m.routes);
    this.captions.focus(paused ? m.editing ?? null : null, [this.captions.single, ...this.cells.map((c) => c.editor)], this);
  }

  /** Only the countdown line (the controller ticks it without drawing the rest). */
  setCountdown(countdown) {
    drawCountdown(this.countdown, countdown);
  }

  renderGrid(grid) {
    if (!grid) {
      if (this.gridKey !== null) {
        this.loader.reset();
        this.thumbs.replaceChildren();
        this.cells = [];
        this.gridKey = null;
      }
      return;
    }
    if (grid.key !== this.gridKey) {
      this.gridKey = grid.key;
      delete this.root.dataset.thumbs;
      this.cells = grid.cells.map((_, i) => this.makeCell(i));
      this.thumbs.replaceChildren(...this.cells.map((c) => c.root));
      this.loader.loadAll(this.cells.map((c, i) => [c.img, grid.cells[i].url]));
    }
    this.thumbs.style.setProperty("--dg-columns", String(grid.columns));
    this.thumbs.style.setProperty("--dg-aspect", String(1 / Math.min(2, Math.max(0.5, grid.aspect))));
    const labels = this.model.labels;
    grid.cells.forEach((cell, i) => {
      const view = this.cells[i];
      if (!view) return;
      view.root.classList.toggle("dg-selected", cell.selected);
      view.root.classList.toggle("dg-cursor", i === grid.cursor);
      view.root.setAttribute("aria-selected", String(cell.selected));
      view.root.style.setProperty("--dg-route-colour", routeColour(cell.route));
      view.root.classList.toggle("dg-own", cell.own);
      this.drawBadge(view.badge, cell, labels);
      if (cell.overlay) {
        if (view.overlay.getAttribute("src") !== cell.overlay) view.overlay.src = cell.overlay;
        view.overlay.hidden = false;
      } else {
        view.overlay.hidden = true;
      }
      this.captions.drawCell(view, cell, this.model.mode === "paused");
    });
  }

  makeCell(index) {
    const img = el("img.dg-cell-img", { alt: `image ${index + 1}`, draggable: false, decoding: "async" });
    const overlay = el("img.dg-cell-overlay", { alt: "", draggable: false, hidden: true });
    const badge = el("span.dg-cell-badge");
    const frame = el("div.dg-cell-frame", {}, img, overlay, badge, el("span.dg-cell-index", {}, String(index + 1)));
    const { line, editor } = this.captions.cellParts(index);
    const root = el("div.dg-cell", { role: "option", dataset: { index: String(index) }, title: `Image ${index + 1}` },
      frame, line, editor);
    return { root, img, overlay, badge, line, editor };
  }

  /** A route badge: number and label in the route's colour; outlined for the default route. */
  drawBadge(badge, cell, labels) {
    badge.hidden = !cell;
    if (!cell) return;
    const label = labelOf(labels, cell.route);
    badge.textContent = label ? `${cell.route} · ${label}` : String(cell.route);
    badge.dataset.route = String(cell.route);
    badge.classList.toggle("dg-default", !cell.own);
    badge.style.setProperty("--dg-route-colour", routeColour(cell.route));
    badge.title = cell.own ? `route ${cell.route}` : `no route of its own: goes down route ${cell.route} on Send`;
  }

  gridLoaded() {
    this.root.dataset.thumbs = "loaded";
    this.on.gridLoaded?.(this.cells.length);
    this.root.dispatchEvent(new CustomEvent("dg-grid-loaded", { bubbles: true, detail: { count: this.cells.length } }));
  }

  onThumbClick(event) {
    if (this.model?.mode !== "paused") return;
    if (event.target.closest(".dg-cell-editor")) return; // a click inside the caption being edited
    const cell = event.target.closest(".dg-cell");
    if (cell && event.target.closest(".dg-cell-caption")) {
      this.on.editCaption(Number(cell.dataset.index));
      return;
    }
    this.root.focus({ preventScroll: true });
    if (!cell) {
      this.on.selectNone();
      return;
    }
    this.on.cell(Number(cell.dataset.index), { shift: event.shiftKey, ctrl: event.ctrlKey || event.metaKey });
  }

  toggleView() {
    if (this.model?.view === "single") this.on.showGrid();
    else this.on.enlarge(this.model?.grid?.cursor ?? 0);
  }

  routeButtons(pause) {
    const labels = pause.labels ?? [];
    return Array.from({ length: pause.routes }, (_, i) => {
      const route = i + 1;
      const key = route === 10 ? "0" : String(route);
      return el("button.dg-btn.dg-route", {
        type: "button", dataset: { route: String(route) },
        title: pause.batch > 1
          ? `Route ${route} (key ${key}): the selected images, or with none selected the whole batch at once`
          : `Send down route ${route} (key ${key})`,
        style: { "--dg-route-colour": routeColour(route) },
        onclick: () => this.on.choose(route),
      }, el("kbd.dg-key", {}, key), el("span.dg-route-name", {}, labelOf(labels, route) || `route ${route}`),
      el("span.dg-route-count", { hidden: true }));
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
    const grid = m.grid && m.view === "grid";
    let act = null;
    if (event.ctrlKey || event.metaKey || event.altKey) {
      if (grid && (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "a") {
        act = () => this.on.selectAll();
      }
    } else if (event.key === "Tab" && !event.shiftKey && m.hasCaptions) {
      act = () => this.on.editCaption(grid ? m.grid.cursor : m.index);
    } else if (/^[0-9]$/.test(event.key)) {
      const route = event.key === "0" ? 10 : Number(event.key);
      if (route <= m.pause.routes && !m.busy) act = () => this.on.choose(route);
      else if (route <= m.pause.routes) act = () => {}; // swallow while a mask uploads
    } else if (event.key === "Escape") act = () => this.on.stop();
    else if (event.key === "Enter") {
      if (m.canSend && !m.busy) act = () => this.on.send();
      else if (m.canSend) act = () => {};
    } else if (event.key === " " && m.grid) act = () => this.toggleView();
    else if (grid && event.key.startsWith("Arrow")) {
      const cols = m.grid.columns;
      const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols }[event.key];
      act = () => this.on.move(step, { shift: event.shiftKey });
    } else if (event.key === "ArrowLeft") act = () => this.on.page(-1);
    else if (event.key === "ArrowRight") act = () => this.on.page(1);
    if (!act) return;
    event.preventDefault();
    event.stopPropagation(); // ComfyUI's own shortcuts (Esc leaves a subgraph) must not fire
    // A focused button would also act on its own key (Space clicks it on key up).
    if (event.target !== this.root) this.focus();
    act();
  }

  focus() {
    this.root.focus({ preventScroll: true });
  }

  /** The panel's smallest comfortable height in canvas units (measured when on screen). */
  minHeight() {
    const showing = !this.preview.hidden || !this.thumbs.hidden;
    const parts = [...this.root.children].filter((c) => !c.hidden && c !== this.preview && c !== this.thumbs);
    if (this.root.isConnected && this.root.offsetParent !== null) {
      const fixed = parts.reduce((sum, c) => sum + c.offsetHeight + GAP, 8);
      return Math.ceil(fixed + (showing ? PREVIEW_MIN : 0));
    }
    const rows = parts.length + (this.labels.open ? (this.model?.routes ?? 2) : 0);
    return rows * 32 + (showing ? PREVIEW_MIN : 0) + 8;
  }
}
