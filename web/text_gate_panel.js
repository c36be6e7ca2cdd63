// The Text Gate's panel inside the node: the status line, a countdown when the pause has a
// deadline, the text in a box to edit, Stop and Send, and "Take over" while another tab's
// orphaned pause waits here. A view only: it reports edits, clicks and keys to its handlers and
// draws the model it is given (text_gate_view.js panelModel()); it makes no HTTP calls. No side
// effects.
import { el } from "./format.js";
import { drawCountdown } from "./pause_view.js";

/**
 * What a key does in the text box, or null (the box takes it: Shift+Enter is a new line).
 * Enter (and Ctrl+Enter) sends, as the Image Gate's Enter does; Esc puts back the text as it
 * was when the edit began and leaves the box.
 * @returns {"send"|"restore"|null}
 */
export function textKey({ key, shiftKey = false, altKey = false }) {
  if (key === "Escape") return "restore";
  return key === "Enter" && !shiftKey && !altKey ? "send" : null;
}

export class TextGatePanel {
  /**
   * @param {Record<string, Function>} on type(text), edit() (the box took the keyboard),
   *   leave(), restore(), send(), stop(), touch() (any click or key while paused), takeOver(),
   *   layout()
   */
  constructor(on) {
    this.on = on;
    this.model = null;
    this.status = el("div.dg-gate-status");
    this.countdown = el("div.dg-countdown", { hidden: true, role: "timer" });
    this.box = el("textarea.dg-text-box", {
      rows: 4, spellcheck: false, hidden: true, "aria-label": "text to pass on",
      onfocus: () => on.edit(), onblur: () => on.leave(), oninput: (e) => on.type(e.target.value),
      onkeydown: (e) => this.onBoxKey(e),
    });
    this.hint = el("div.dg-grid-hint", { hidden: true });
    this.stop = el("button.dg-btn.dg-danger.dg-stop", { type: "button", title: "Stop the run (Esc)", onclick: () => on.stop() },
      "Stop");
    this.send = el("button.dg-btn.dg-primary.dg-send", { type: "button", title: "Pass the text on (Enter)",
      onclick: () => on.send() }, "Send ", el("kbd.dg-key", {}, "Enter"));
    this.takeOver = el("button.dg-btn.dg-primary.dg-take-over", {
      type: "button", title: "Answer this pause here: its tab is gone", onclick: () => on.takeOver(),
    }, "Take over");
    this.tools = el("div.dg-tools", {}, this.stop, el("span.dg-grow"), this.send, this.takeOver);
    this.note = el("div.dg-gate-note", { hidden: true });
    this.root = el("div.dg-root.dg-gate.dg-text-gate", { tabIndex: 0 },
      this.status, this.countdown, this.box, this.hint, this.tools, this.note);
    this.root.addEventListener("keydown", (event) => this.onKey(event));
    this.root.addEventListener("pointerdown", () => this.touched(), true);
    this.root.addEventListener("keydown", () => this.touched(), true);
  }

  get element() {
    return this.root;
  }

  touched() {
    if (this.model?.mode === "paused") this.on.touch?.();
  }

  render(m) {
    const before = this.model?.mode;
    this.model = m;
    const paused = m.mode === "paused";
    this.root.dataset.mode = m.mode;
    this.status.textContent = m.status;
    this.setCountdown(m.countdown);
    this.box.hidden = !m.showText;
    this.box.readOnly = !m.editable;
    this.box.classList.toggle("dg-edited", m.edited);
    if (this.box.value !== m.text) this.box.value = m.text;
    this.hint.hidden = !m.hint;
    this.hint.textContent = m.hint;
    this.stop.hidden = !paused;
    this.send.hidden = !paused;
    for (const b of [this.stop, this.send, this.takeOver]) b.disabled = m.busy;
    this.takeOver.hidden = !(m.mode === "elsewhere" && m.orphaned);
    this.tools.hidden = !paused && this.takeOver.hidden;
    this.note.textContent = m.note;
    this.note.hidden = !m.note;
    this.note.classList.toggle("dg-error", Boolean(m.noteIsError));
    if (!paused && this.box === document.activeElement) this.root.focus({ preventScroll: true });
    if (before !== m.mode) this.on.layout?.();
  }

  /** Only the countdown line (the controller ticks it without drawing the rest). */
  setCountdown(countdown) {
    drawCountdown(this.countdown, countdown);
  }

  onBoxKey(event) {
    event.stopPropagation(); // ComfyUI's shortcuts are not for text
    const act = textKey(event);
    if (!act) return;
    event.preventDefault();
    if (act === "send") {
      this.on.send();
      return;
    }
    this.on.restore();
    this.root.focus({ preventScroll: true });
  }

  onKey(event) {
    if (this.model?.mode !== "paused" || event.target !== this.root) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Enter") this.on.send();
    else if (event.key === "Escape") this.on.stop();
    else return;
    event.preventDefault();
    event.stopPropagation(); // ComfyUI's own shortcuts (Esc leaves a subgraph) must not fire
  }

  /** The keyboard to the text while it can be edited (the caret at its end), else the panel. */
  focus() {
    if (this.model?.mode !== "paused") {
      this.root.focus({ preventScroll: true });
      return;
    }
    this.box.focus({ preventScroll: true });
    this.box.setSelectionRange(this.box.value.length, this.box.value.length);
  }

  /** The panel's smallest comfortable height in canvas units (measured when on screen). */
  minHeight() {
    const parts = [...this.root.children].filter((c) => !c.hidden);
    if (this.root.isConnected && this.root.offsetParent !== null) {
      return Math.ceil(parts.reduce((sum, c) => sum + c.offsetHeight + 6, 8));
    }
    return parts.length * 32 + (this.box.hidden ? 0 : 60) + 8;
  }
}
