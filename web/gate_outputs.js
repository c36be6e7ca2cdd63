// The Image Gate's outputs and route labels. The node always has all of its outputs, in the
// server's order: mask, route_1..route_10, decisions, latent, captions. A prompt links outputs
// by index, so none is ever removed; routes beyond the `routes` widget are shown as off. Labels
// live in node.properties (saved with the workflow) and are mirrored into the hidden `labels`
// widget, which is what the server reads. No side effects.

export const MAX_ROUTES = 10;
/** The server's outputs after the routes (gates/nodes.py RETURN_NAMES), in order. */
const TAIL_OUTPUTS = [["decisions", "DG_DECISIONS"], ["latent", "LATENT"], ["captions", "DG_CAPTIONS"]];
export const LABELS_PROPERTY = "dg_labels";
const MAX_LABEL = 40;

export function widgetByName(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

/** One label as the server can take it: no commas or newlines (they separate labels). */
export function cleanLabel(text) {
  return String(text ?? "").replace(/[,\n\r]+/g, " ").replace(/\s+/g, " ").trim().slice(0, MAX_LABEL);
}

export function routeCount(node) {
  const value = Number(widgetByName(node, "routes")?.value);
  return Number.isFinite(value) ? Math.min(MAX_ROUTES, Math.max(1, Math.round(value))) : 2;
}

/**
 * The user's labels, one per possible route ("" = unnamed).
 *
 * The `labels` widget is what the server reads, and what a loaded workflow sets (an API-format
 * one, or a UI one saved without the property); the property also keeps the labels of routes
 * beyond `routes`. So the property counts only while it agrees with every label the widget
 * lists; otherwise the widget was set from outside (after the node was created with blank
 * labels) and wins.
 */
export function readLabels(node) {
  const text = String(widgetByName(node, "labels")?.value ?? "");
  const listed = text ? text.split(/[,\n]/).map(cleanLabel) : [];
  const kept = node.properties?.[LABELS_PROPERTY];
  const agrees = Array.isArray(kept) && listed.every((label, i) => cleanLabel(kept[i]) === label);
  const labels = agrees ? kept : listed;
  return Array.from({ length: MAX_ROUTES }, (_, i) => cleanLabel(labels[i]));
}

/** A route's own label, "" when unnamed (the server fills blanks with the route number). */
export function labelOf(labels, route) {
  const label = cleanLabel(labels?.[route - 1]);
  return label === String(route) ? "" : label;
}

/** What a route is called in text: "route 2 · keep", or "route 2" when unnamed. */
export function routeTitle(labels, route) {
  const label = labelOf(labels, route);
  return label ? `route ${route} · ${label}` : `route ${route}`;
}

/** Store labels in the node's properties and its hidden `labels` widget. */
export function writeLabels(node, labels) {
  const clean = Array.from({ length: MAX_ROUTES }, (_, i) => cleanLabel(labels[i]));
  node.properties ??= {};
  node.properties[LABELS_PROPERTY] = clean;
  const widget = widgetByName(node, "labels");
  if (widget) {
    // Trailing blanks are dropped; inner blanks stay so label i still means route i.
    const used = clean.slice(0, routeCount(node));
    while (used.length && !used[used.length - 1]) used.pop();
    widget.value = used.join(", ");
  }
  return clean;
}

/** Hide the raw `labels` text widget: the panel edits labels. */
export function hideLabelsWidget(node) {
  const widget = widgetByName(node, "labels");
  if (!widget) return;
  widget.hidden = true; // the LiteGraph canvas
  widget.options ??= {};
  widget.options.hidden = true; // Vue nodes mode
}

function isRouteOutput(output, index) {
  return output?.name === `route_${index}`;
}

/** LiteGraph's NodeSlotType.OUTPUT (LiteGraph.OUTPUT); this module imports nothing from ComfyUI. */
const OUTPUT_SLOT = 2;
/** The supported way to say a node's slot labels changed (frontend 1.4x+, as its subgraph nodes do). */
const SLOT_LABEL_EVENT = "node:slot-label:changed";
/** The only event after which 1.3x's Vue nodes re-read a node's slots. */
const LEGACY_SLOTS_EVENT = "node:slot-errors:changed";

/**
 * Tell the graph the node's outputs changed, the way the frontend does for its own slot renames.
 * Returns whether this frontend knows that event (it hands it to graph.events); one that does
 * not (1.3x) ignores it, and its Vue nodes show `localized_name || name`, never `label`.
 */
function announceOutputs(node) {
  const graph = node.graph;
  if (typeof graph?.trigger !== "function") return null; // not in a graph yet: drawn once added
  const events = graph.events;
  let heard = false;
  const hear = () => { heard = true; };
  events?.addEventListener?.(SLOT_LABEL_EVENT, hear);
  try {
    graph.trigger(SLOT_LABEL_EVENT, { nodeId: node.id, slotType: OUTPUT_SLOT });
  } finally {
    events?.removeEventListener?.(SLOT_LABEL_EVENT, hear);
  }
  return heard;
}

/** A new slot object with the same fields (and class) as `slot`. */
function renewedSlot(slot, node) {
  const Slot = slot.constructor;
  return typeof Slot === "function" && Slot !== Object ? new Slot(slot, node) : { ...slot };
}

/** Every output the server declares, appended where a workflow saved with fewer lacks them. */
function ensureOutputs(node) {
  const wanted = [["mask", "MASK"],
    ...Array.from({ length: MAX_ROUTES }, (_, i) => [`route_${i + 1}`, "IMAGE"]), ...TAIL_OUTPUTS];
  // A workflow saved while routes were trimmed at the tail holds a prefix of `wanted`.
  for (let i = node.outputs.length; i < wanted.length; i++) node.addOutput(...wanted[i]);
}

/** Show the labels on the route outputs, and the routes beyond `routes` as off. */
export function syncOutputs(node) {
  node.outputs ??= [];
  ensureOutputs(node);
  const routes = routeCount(node);
  const labels = readLabels(node);
  const shown = [];
  for (let i = 1; i < node.outputs.length; i++) {
    const output = node.outputs[i];
    if (!isRouteOutput(output, i)) continue;
    const label = i > routes ? `off (${i})` : labelOf(labels, i) && `${labelOf(labels, i)} (${i})`;
    if (label) output.label = label;
    else delete output.label;
    shown.push([i, output]);
  }
  writeLabels(node, labels);
  const current = announceOutputs(node);
  if (current !== null) {
    // 1.3x: its Vue nodes show localized_name only, redraw a slot only when handed a new slot
    // object (LGraphNode.configure() makes them the same way) and re-read a node's slots on
    // LEGACY_SLOTS_EVENT alone. Elsewhere a label copied there (a workflow saved by 1.3x
    // carries it) goes again.
    for (const [i, output] of shown) {
      if (current) {
        if (output.localized_name?.endsWith(` (${i})`)) output.localized_name = output.name;
        continue;
      }
      const text = output.label ?? output.name;
      if (output.localized_name === text) continue;
      output.localized_name = text;
      node.outputs[i] = renewedSlot(output, node);
    }
    if (!current) node.graph.trigger(LEGACY_SLOTS_EVENT, { nodeId: node.id, slotType: OUTPUT_SLOT });
  }
  node.setDirtyCanvas?.(true, true);
}
