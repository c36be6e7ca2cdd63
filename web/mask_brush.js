// The built-in mask brush: a modal over the page to paint a mask on one preview image.
// Always available (ComfyUI's MaskEditor is optional). No side effects until openBrush().
import { el } from "./format.js";
import { TINT, blankMask, copyMask, colourise } from "./mask_data.js";

/**
 * Paint a mask over `image` (a loaded <img>, the preview). Resolves with the new mask canvas
 * (the image's natural size; may be empty) on Save, or null on Cancel.
 * @param {{image: HTMLImageElement, mask?: HTMLCanvasElement|null, title?: string}} options
 */
export function openBrush({ image, mask = null, title = "Paint mask" }) {
  const width = image.naturalWidth || image.width;
  const height = image.naturalHeight || image.height;
  const painted = mask ? copyMask(mask, width, height) : blankMask(width, height);
  const view = colourise(painted, TINT); // what the user sees, same pixels as `painted`
  view.className = "dg-brush-canvas";
  const state = { size: Math.max(4, Math.round(Math.min(width, height) / 16)), erase: false, last: null };

  return new Promise((resolve) => {
    const size = el("input.dg-brush-size", {
      type: "range", min: "1", max: String(Math.max(8, Math.round(Math.max(width, height) / 3))),
      value: String(state.size), title: "Brush size ([ and ])",
      oninput: () => { state.size = Number(size.value); },
    });
    const paintBtn = el("button.dg-btn.dg-brush-paint.dg-primary", { type: "button", onclick: () => setErase(false) }, "Paint");
    const eraseBtn = el("button.dg-btn.dg-brush-erase", { type: "button", onclick: () => setErase(true) }, "Erase");
    const cursor = el("div.dg-brush-cursor");
    const picture = el("img.dg-brush-image", { src: image.src, alt: "", draggable: false });
    const stage = el("div.dg-brush-stage", {}, picture, view, cursor);
    const dialog = el("div.dg-brush", { role: "dialog", "aria-label": title, tabIndex: -1 },
      el("div.dg-brush-bar",
        el("strong", {}, title),
        el("label.dg-brush-label", {}, "Size ", size),
        paintBtn, eraseBtn,
        el("button.dg-btn.dg-brush-clear", { type: "button", onclick: clearAll }, "Clear"),
        el("span.dg-grow"),
        el("button.dg-btn.dg-brush-cancel", { type: "button", onclick: () => finish(null) }, "Cancel"),
        el("button.dg-btn.dg-primary.dg-brush-save", { type: "button", onclick: () => finish(painted) }, "Save")),
      stage,
      el("div.dg-muted.dg-brush-hint", {}, "Drag to paint · E toggles erase · [ ] size · Enter saves · Esc cancels"));
    const backdrop = el("div.dg-root.dg-brush-backdrop", {}, dialog);

    function fit() {
      const maxW = window.innerWidth * 0.92 - 24;
      const maxH = window.innerHeight * 0.92 - 110;
      const scale = Math.min(maxW / width, maxH / height, 8);
      stage.style.width = `${Math.max(1, Math.floor(width * scale))}px`;
      stage.style.height = `${Math.max(1, Math.floor(height * scale))}px`;
    }

    function setErase(erase) {
      state.erase = erase;
      paintBtn.classList.toggle("dg-primary", !erase);
      eraseBtn.classList.toggle("dg-primary", erase);
    }

    function clearAll() {
      for (const c of [painted, view]) c.getContext("2d").clearRect(0, 0, c.width, c.height);
    }

    function toImage(event) {
      const box = view.getBoundingClientRect();
      return [(event.clientX - box.left) * (width / box.width), (event.clientY - box.top) * (height / box.height)];
    }

    function stroke(from, to) {
      for (const [c, colour] of [[painted, "#fff"], [view, TINT]]) {
        const ctx = c.getContext("2d");
        ctx.globalCompositeOperation = state.erase ? "destination-out" : "source-over";
        ctx.strokeStyle = ctx.fillStyle = colour;
        ctx.lineWidth = state.size;
        ctx.lineCap = ctx.lineJoin = "round";
        ctx.beginPath();
        ctx.moveTo(from[0], from[1]);
        ctx.lineTo(to[0] + 0.01, to[1]);
        ctx.stroke();
      }
    }

    function moveCursor(event) {
      const box = view.getBoundingClientRect();
      const px = state.size * (box.width / width);
      Object.assign(cursor.style, {
        width: `${px}px`, height: `${px}px`, display: "block",
        left: `${event.clientX - box.left - px / 2}px`, top: `${event.clientY - box.top - px / 2}px`,
      });
    }

    view.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      view.setPointerCapture(event.pointerId);
      state.last = toImage(event);
      stroke(state.last, state.last);
      event.preventDefault();
    });
    view.addEventListener("pointermove", (event) => {
      moveCursor(event);
      if (!state.last) return;
      const point = toImage(event);
      stroke(state.last, point);
      state.last = point;
    });
    const endStroke = () => { state.last = null; };
    view.addEventListener("pointerup", endStroke);
    view.addEventListener("pointercancel", endStroke);
    view.addEventListener("pointerleave", () => { cursor.style.display = "none"; });

    function onKey(event) {
      const actions = {
        Escape: () => finish(null), Enter: () => finish(painted),
        e: () => setErase(!state.erase), E: () => setErase(!state.erase),
        "[": () => { state.size = Math.max(1, state.size - 2); size.value = String(state.size); },
        "]": () => { state.size = Math.min(Number(size.max), state.size + 2); size.value = String(state.size); },
      };
      event.stopPropagation(); // the graph must not react to keys typed here
      const act = actions[event.key];
      if (!act) return;
      event.preventDefault();
      act();
    }

    function finish(result) {
      window.removeEventListener("resize", fit);
      backdrop.remove();
      resolve(result ? copyMask(result) : null);
    }

    dialog.addEventListener("keydown", onKey);
    window.addEventListener("resize", fit);
    fit();
    document.body.append(backdrop);
    dialog.focus({ preventScroll: true });
  });
}
