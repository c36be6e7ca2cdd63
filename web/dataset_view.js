// What a dataset looks like on screen, shared by the dataset nodes' panel (dataset_node.js) and
// the slot browser's Datasets panel (browser/): bucket counts as a compact bar list, and the
// files that could not be read as "file — why" rows. Pure rows first (bucketRows, errorRows:
// no DOM), then the elements drawing them. Imports format.js only; no side effects.
import { el } from "./format.js";

/** A count as the server writes it: 1,234. */
export const countText = (n) => Number(n).toLocaleString("en-US");

/**
 * Bucket counts ([{bucket: "832x1216", count}], in the order given) as rows to draw: each with
 * its count's text and its share of the largest count (0..1, the bar's length). Malformed rows
 * are left out.
 * @returns {{bucket: string, count: number, text: string, share: number}[]}
 */
export function bucketRows(buckets) {
  const rows = (Array.isArray(buckets) ? buckets : [])
    .filter((b) => b && typeof b.bucket === "string" && Number.isFinite(Number(b.count)))
    .map((b) => ({ bucket: b.bucket, count: Number(b.count) }));
  const top = Math.max(1, ...rows.map((r) => r.count));
  return rows.map((r) => ({ ...r, text: countText(r.count), share: Math.max(0, r.count) / top }));
}

/**
 * Per-file errors ([{file, error}]) as rows to draw, as strings; a row without a file says so.
 * @returns {{file: string, error: string}[]}
 */
export function errorRows(errors) {
  return (Array.isArray(errors) ? errors : [])
    .filter((e) => e && typeof e === "object")
    .map((e) => ({ file: String(e.file ?? "(unknown file)"), error: String(e.error ?? "could not be read") }));
}

/** bucketRows as a bar list: the bucket, a bar as long as its share, the count. */
export function drawBuckets(rows) {
  return el("div.dg-ds-buckets", { role: "list", "aria-label": "bucket counts" },
    ...rows.map((r) => el("div.dg-ds-bucket", { role: "listitem", title: `${r.bucket}: ${r.text}` },
      el("span.dg-ds-bucket-name", {}, r.bucket),
      el("span.dg-ds-bar", {}, el("span.dg-ds-bar-fill", { style: { width: `${(r.share * 100).toFixed(1)}%` } })),
      el("span.dg-ds-bucket-count", {}, r.text))));
}

/** errorRows as a compact list, "file — why" a row (scrolls when long: dataset.css). */
export function drawErrors(rows) {
  return el("ul.dg-ds-errors", { "aria-label": "files that could not be read" },
    ...rows.map((r) => el("li.dg-ds-error", { title: `${r.file} — ${r.error}` },
      el("span.dg-ds-error-file", {}, r.file), " — ", el("span.dg-ds-error-why", {}, r.error))));
}
