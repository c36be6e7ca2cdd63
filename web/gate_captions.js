// The captions at a pause, in the Image Gate's panel: the enlarged image's caption in a text
// box under it (the whole text), a line under each grid thumbnail (one line, cut short; a click
// edits it in place), and the keys of the caption being edited (captionKey). A view only: it
// reports edits and keys to its handlers and draws the caption model it is given
// (gate_view.js). No side effects.
import { el } from "./format.js";

/**
 * What a key does in a caption being edited, or null (the text box takes it: letters, arrows,
 * Shift+Enter for a new line). Enter and Tab move on to the next image's caption, so a batch
 * is captioned without leaving the keyboard; Ctrl+Enter sends the answer from there.
 * @returns {"next"|"previous"|"restore"|"send"|null}
 */
export function captionKey({ key, shiftKey = false, ctrlKey = false, metaKey = false, altKey = false }) {
  if (key === "Escape") return "restore";
  if (key === "Tab" && !ctrlKey && !metaKey && !altKey) return shiftKey ? "previous" : "next";
  if (key !== "Enter" || altKey) return null;
  if (ctrlKey || metaKey) return "send";
  return shiftKey ? null : "next";
}

export class CaptionFields {
  /**
   * @param {Record<string, Function>} on  edit(index) (a caption took the focus), type(text),
   *   move(step), restore(), leave(index) (a caption lost the focus), send()
   */
  constructor(on) {
    this.on = on;
    this.single = this.field(el("textarea.dg-caption", {
      rows: 3, spellcheck: false, placeholder: "No caption: type one", hidden: true, "aria-label": "caption",
    }));
  }

  /** Wire a caption text box; its batch index is its `data-index`. */
  field(box) {
    const index = () => Number(box.dataset.index);
    box.addEventListener("focus", () => this.on.edit(index()));
    box.addEventListener("blur", () => this.on.leave(index()));
    box.addEventListener("input", () => this.on.type(box.value));
    box.addEventListener("keydown", (event) => {
      event.stopPropagation(); // ComfyUI's shortcuts and the panel's route keys are not for text
      const act = captionKey(event);
      if (!act) return;
      event.preventDefault();
      if (act === "next" || act === "previous") this.on.move(act === "next" ? 1 : -1);
      else if (act === "restore") this.on.restore();
      else this.on.send();
    });
    return box;
  }

  /** A grid cell's caption: a line under the thumbnail, and the box that edits it in place. */
  cellParts(index) {
    const line = el("div.dg-cell-caption", { hidden: true, title: "Click to edit the caption (Tab)" });
    const editor = this.field(el("textarea.dg-cell-editor", {
      hidden: true, spellcheck: false, "aria-label": `caption of image ${index + 1}`, dataset: { index: String(index) },
    }));
    return { line, editor };
  }

  /**
   * The enlarged image's caption box.
   * @param {{index: number, text: string, edited: boolean, editing: boolean}|null} caption
   * @param {boolean} paused  editable only while paused
   */
  drawSingle(caption, paused) {
    const box = this.single;
    box.hidden = !caption;
    if (!caption) return;
    box.dataset.index = String(caption.index);
    box.readOnly = !paused;
    box.classList.toggle("dg-edited", caption.edited);
    if (box.value !== caption.text) box.value = caption.text;
  }

  /** A grid cell's caption line and, while it is edited, its box. */
  drawCell(parts, cell, paused) {
    const { line, editor } = parts;
    const has = typeof cell.caption === "string";
    line.hidden = !has;
    editor.hidden = !(has && paused && cell.editing);
    if (!has) return;
    line.textContent = cell.caption || "no caption";
    line.title = cell.caption || "No caption: click to write one";
    line.classList.toggle("dg-empty", !cell.caption);
    line.classList.toggle("dg-edited", cell.edited);
    if (editor.value !== cell.caption) editor.value = cell.caption;
  }

  /** The box of the caption being edited takes the keyboard (the caret at the end); once no
   *  caption is edited, a caption box that still has it gives it back to the panel. */
  focus(editing, boxes, panel) {
    const active = document.activeElement;
    const box = editing === null ? null : boxes.find((b) => !b.hidden && Number(b.dataset.index) === editing);
    if (box && active !== box) {
      box.focus({ preventScroll: true });
      box.setSelectionRange(box.value.length, box.value.length);
    } else if (!box && boxes.includes(active)) {
      panel.focus();
    }
  }
}
