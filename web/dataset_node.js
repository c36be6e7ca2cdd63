// One dataset node (Dataset Load, Bucket Resize, Dataset Save) in the page: a panel under its
// widgets showing what its last run did, from the node's `dg_dataset` UI message
// (gates/comfy/dataset_nodes.py `_ui`): the folder (small), its lines (Dataset Load's progress
// and the page's place in the folder), the files it could not read ("file — why") and bucket
// counts. Before any run it shows a one-line hint. The extension entry creates one controller
// per node (node.dgDataset) and hands it each run's output (the node's onExecuted). Imports
// nothing from ComfyUI; no side effects.
import { el, ensureStylesheet } from "./format.js";
import { bucketRows, drawBuckets, drawErrors, errorRows } from "./dataset_view.js";

/** The key of the nodes' UI message (dataset_nodes.py UI_KEY). */
export const UI_KEY = "dg_dataset";

/** The dataset nodes by type, each with what its panel says before its first run. */
export const DATASET_NODES = {
  DatasetGatesDatasetLoad: "Each run loads the next page; its progress in the folder shows here.",
  DatasetGatesBucketResize: "Each run shows how many images went into each bucket here.",
  DatasetGatesDatasetSave: "Each run shows what it wrote here.",
};

/** The panel's rows that scroll (error rows, buckets) and the fallback row height, in pixels. */
const LINE = 18;
const LIST_MAX = 6;
const GAP = 4;

/**
 * The last `dg_dataset` message of a node's output (ComfyUI's "executed" output, whose values
 * are lists), read defensively; null when the output has none.
 * @returns {{title: string, lines: string[], errors: {file: string, error: string}[],
 *   buckets: {bucket: string, count: number, text: string, share: number}[]}|null}
 */
export function datasetMessage(output) {
  const list = output?.[UI_KEY];
  const m = Array.isArray(list) ? list[list.length - 1] : null;
  if (!m || typeof m !== "object") return null;
  return {
    title: String(m.title ?? ""),
    lines: (Array.isArray(m.lines) ? m.lines : []).map(String),
    errors: errorRows(m.errors),
    buckets: bucketRows(m.buckets),
  };
}

/** The panel's DOM: a view only (it draws the message it is given). */
export class DatasetPanel {
  /** @param {string} hint what it says before the node's first run */
  constructor(hint = "") {
    this.hint = el("div.dg-ds-hint", {}, hint);
    this.title = el("div.dg-ds-title", { hidden: true });
    this.lines = el("div.dg-ds-lines", { hidden: true });
    this.errorsHead = el("div.dg-ds-head.dg-error", { hidden: true });
    this.errors = el("div.dg-ds-list", { hidden: true });
    this.buckets = el("div.dg-ds-list", { hidden: true });
    this.root = el("div.dg-root.dg-dataset", { dataset: { state: "idle" } },
      this.hint, this.title, this.lines, this.errorsHead, this.errors, this.buckets);
  }

  get element() {
    return this.root;
  }

  /** @param {ReturnType<typeof datasetMessage>} m the message to show; null: the hint */
  render(m) {
    this.root.dataset.state = m ? "shown" : "idle";
    this.hint.hidden = Boolean(m);
    this.title.hidden = !m?.title;
    this.title.textContent = m?.title ?? "";
    this.title.title = m?.title ?? "";
    this.lines.hidden = !m?.lines.length;
    this.lines.replaceChildren(...(m?.lines ?? []).map((line) => el("div.dg-ds-line", {}, line)));
    const errors = m?.errors ?? [];
    this.errorsHead.hidden = this.errors.hidden = !errors.length;
    this.errorsHead.textContent = `Could not read ${errors.length === 1 ? "1 file" : `${errors.length} files`}:`;
    this.errors.replaceChildren(...(errors.length ? [drawErrors(errors)] : []));
    const buckets = m?.buckets ?? [];
    this.buckets.hidden = !buckets.length;
    this.buckets.replaceChildren(...(buckets.length ? [drawBuckets(buckets)] : []));
  }

  /** The panel's smallest comfortable height in canvas units (measured when on screen). */
  minHeight() {
    const parts = [...this.root.children].filter((c) => !c.hidden);
    if (this.root.isConnected && this.root.offsetParent !== null) {
      return Math.ceil(parts.reduce((sum, c) => sum + c.offsetHeight + GAP, 8));
    }
    // Not laid out yet: a line per text row, the lists at most LIST_MAX rows (they scroll).
    const rows = (list) => Math.min(LIST_MAX, list.querySelectorAll("li, .dg-ds-bucket").length);
    const count = parts.reduce((sum, c) => sum + (c === this.lines ? c.children.length
      : c === this.errors || c === this.buckets ? rows(c) : 1), 0);
    return count * LINE + parts.length * GAP + 8;
  }
}

/** One dataset node's panel as a DOM widget; `show(output)` after each of its runs. */
export class DatasetController {
  /**
   * @param {object} node the LiteGraph node (addDOMWidget, computeSize, setSize)
   * @param {string} type its type, a key of DATASET_NODES
   */
  constructor(node, type) {
    ensureStylesheet("dataset", new URL("./dataset.css", import.meta.url));
    this.node = node;
    this.message = null;
    this.panel = new DatasetPanel(DATASET_NODES[type] ?? "");
    this.widget = node.addDOMWidget(UI_KEY, UI_KEY, this.panel.element, {
      serialize: false, getValue: () => "", setValue: () => {}, getMinHeight: () => this.panel.minHeight(),
    });
    this.widget.serialize = false;
    this.panel.render(null);
  }

  /** A run's output (the node's onExecuted): its `dg_dataset` message, if it has one. */
  show(output) {
    const m = datasetMessage(output);
    if (!m) return;
    this.message = m;
    this.panel.render(m);
    this.fit();
  }

  /** Grow the node to its content (never shrink it: the person may have sized it). */
  fit() {
    const node = this.node;
    if (!node.size || typeof node.computeSize !== "function") return;
    const need = node.computeSize()[1];
    if (node.size[1] < need) {
      node.setSize([node.size[0], need]);
      node.setDirtyCanvas?.(true, true);
    }
  }
}
