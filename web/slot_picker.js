// A popup listing bus slots (thumbnail, id, batch, size, age) to fill a slot id widget.
// "get" mode picks a slot to read; "send" mode shows which ids exist (sending to one replaces
// it). Free text is always allowed. One picker is open at a time: the page's SlotPicker (the
// extension entry makes one) knows which. No side effects until used.
import { age, el, humanBytes, sizeText } from "./format.js";
import { comfyBus } from "./comfy_api.js";
import { widgetByName } from "./gate_outputs.js";

const PRESS_MAX_AGE_MS = 2000;

/**
 * The page's slot pickers: the one open now, the buttons that open one, and the last pointer
 * press (see anchorFor).
 */
export class SlotPicker {
  constructor() {
    this.current = null; // the open picker: {close, refresh}
    this.lastPress = null; // {target, x, y, at}, once listenForPresses ran
  }

  /**
   * Open the picker next to `at` ({x, y} in client pixels, or an element).
   * @param {{at, mode?: "get"|"send", value?: string, title?: string, onPick: (id: string) => void}} options
   */
  open(options) {
    this.current?.close();
    const handle = openPicker(options, () => {
      if (this.current === handle) this.current = null;
    });
    this.current = handle;
    return handle;
  }

  /** Re-list the open picker's slots (called after every run). */
  refresh() {
    this.current?.refresh();
  }

  listenForPresses() {
    if (this.lastPress !== null) return;
    this.lastPress = { target: null, at: -Infinity };
    document.addEventListener("pointerdown", (event) => {
      this.lastPress = { target: event.target, x: event.clientX, y: event.clientY, at: event.timeStamp };
    }, { capture: true, passive: true });
  }

  /**
   * Where a button widget was clicked, for the picker. The LiteGraph canvas passes its pointer
   * event; Vue nodes mode calls the callback from its own <button>'s click with no event, so the
   * press that led to it (or, from the keyboard, the focused button) names the element.
   */
  anchorFor(event) {
    if (event && Number.isFinite(event.clientX)) return { x: event.clientX, y: event.clientY };
    const press = this.lastPress;
    const fresh = press?.target instanceof Element && performance.now() - press.at < PRESS_MAX_AGE_MS;
    if (fresh) return press.target.closest("button") ?? { x: press.x, y: press.y };
    const focused = document.activeElement;
    return focused instanceof HTMLButtonElement ? focused : null;
  }

  /**
   * Give a node a "pick slot" button (a serialize:false widget, added last so saved widget
   * values keep their positions) that fills the STRING widget `name`.
   */
  addButton(node, name, mode) {
    const target = widgetByName(node, name);
    if (!target) return null;
    this.listenForPresses();
    const button = node.addWidget("button", `pick ${name} ▾`, null, (_w, _canvas, _node, _pos, event) => {
      this.open({
        at: this.anchorFor(event), mode, value: String(target.value ?? ""), title: name,
        onPick: (id) => setWidget(node, target, id),
      });
    }, { serialize: false });
    button.serialize = false;
    return button;
  }
}

/** A picker on the page next to `at`; `closed()` runs when it closes. */
function openPicker({ at, mode = "get", value = "", title, onPick }, closed) {
  const input = el("input.dg-pick-input", {
    type: "text", value, placeholder: "slot id", spellcheck: false, "aria-label": "slot id",
  });
  const list = el("div.dg-pick-list", {}, el("div.dg-muted.dg-pick-note", {}, "Loading slots…"));
  const note = mode === "send"
    ? "Existing ids — publishing to one of them replaces it."
    : "Pick a slot, or type an id.";
  const box = el("div.dg-root.dg-picker", { role: "dialog", tabIndex: -1 },
    el("div.dg-pick-head",
      el("strong", {}, title ?? (mode === "send" ? "send_id" : "get_id")),
      el("span.dg-grow"),
      el("button.dg-btn.dg-pick-refresh", { type: "button", title: "Refresh", onclick: () => refresh() }, "↻"),
      el("button.dg-btn.dg-pick-close", { type: "button", title: "Close", onclick: () => close() }, "✕")),
    el("div.dg-pick-free", {}, input,
      el("button.dg-btn.dg-primary.dg-pick-use", { type: "button", onclick: () => pick(input.value.trim()) }, "Use")),
    el("div.dg-muted.dg-pick-note", {}, note),
    list);

  function pick(id) {
    onPick(id);
    close();
  }

  function row(slot) {
    const bad = Boolean(slot.error);
    const thumb = bad
      ? el("div.dg-pick-thumb.dg-thumb-missing", {}, "!")
      : el("img.dg-pick-thumb", { src: comfyBus.thumbUrl(slot), alt: "", loading: "lazy" });
    const facts = bad
      ? slot.error
      : `batch ${slot.batch} · ${sizeText(slot.image_shape)} · ${humanBytes(slot.bytes)} · ${age(slot.created)}`;
    return el(`button.dg-pick-row${slot.id === input.value.trim() ? ".dg-selected" : ""}`, {
      type: "button", dataset: { slotId: slot.id }, title: bad ? slot.error : slot.id,
      onclick: () => pick(slot.id),
    }, thumb, el("span.dg-pick-text", {}, el("span.dg-pick-id", {}, slot.id), el(`span.dg-pick-facts${bad ? ".dg-error" : ".dg-muted"}`, {}, facts)));
  }

  async function refresh() {
    try {
      const { slots } = await comfyBus.list();
      list.replaceChildren(...slots.map(row));
      if (!slots.length) list.append(el("div.dg-muted.dg-pick-note", {}, "No slots yet: a gate with send_id or a Bus Save makes one."));
    } catch (err) {
      list.replaceChildren(el("div.dg-error.dg-pick-note", {}, `Could not list slots: ${err.message}`));
    }
  }

  function onKey(event) {
    event.stopPropagation(); // typing here must not drive the graph
    if (event.key === "Escape") close();
    else if (event.key === "Enter" && event.target === input) pick(input.value.trim());
  }

  function onOutside(event) {
    if (!box.contains(event.target)) close();
  }

  function close() {
    document.removeEventListener("pointerdown", onOutside, true);
    box.remove();
    closed();
  }

  box.addEventListener("keydown", onKey);
  document.body.append(box);
  place(box, at);
  document.addEventListener("pointerdown", onOutside, true);
  input.focus({ preventScroll: true });
  input.select();
  refresh();
  return { close, refresh };
}

function place(box, at) {
  const rect = at instanceof Element ? at.getBoundingClientRect() : null;
  const x = rect ? rect.left : at?.x ?? 40;
  const y = rect ? rect.bottom + 4 : at?.y ?? 40;
  const { width, height } = box.getBoundingClientRect();
  box.style.left = `${Math.max(4, Math.min(x, window.innerWidth - width - 4))}px`;
  box.style.top = `${Math.max(4, Math.min(y, window.innerHeight - height - 4))}px`;
}

/** Set a widget's value the way a user edit would (callbacks run, the graph is marked dirty). */
export function setWidget(node, widget, value) {
  widget.value = value;
  widget.callback?.(value, undefined, node);
  node.setDirtyCanvas?.(true, true);
  node.graph?.change?.();
}
