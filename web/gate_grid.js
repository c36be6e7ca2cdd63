// The batch grid's model at a pause: which images are selected, the route each one goes down,
// and the countdown text. Pure functions and one small class; no DOM, no imports and no side
// effects, so it runs (and is tested) in any page.

/** One colour per route (1..10), also used by the route buttons. */
export const ROUTE_COLOURS = [
  "#3b82f6", "#ef4444", "#22c55e", "#f59e0b", "#a855f7",
  "#06b6d4", "#ec4899", "#84cc16", "#f97316", "#94a3b8",
];
/** Images without a route of their own go down this one when the grid is sent. */
export const DEFAULT_ROUTE = 1;
/** Grid thumbnails ask GET /preview for this long side. */
export const THUMB_SIDE = 160;
const MAX_COLUMNS = 8;

export function routeColour(route) {
  return ROUTE_COLOURS[(Math.max(1, route) - 1) % ROUTE_COLOURS.length];
}

/** Columns of the grid for a batch: 2×2 for 4, 4×4 for 16, 8×8 for 64, at most 8. */
export function gridColumns(batch) {
  return Math.max(1, Math.min(MAX_COLUMNS, Math.ceil(Math.sqrt(Math.max(1, batch)))));
}

/** A pause's `preselect` as one route (1..routes) or null per image; anything else is null. */
export function normalisePreselect(preselect, batch, routes) {
  return Array.from({ length: batch }, (_, i) => {
    const route = Array.isArray(preselect) ? preselect[i] : null;
    return Number.isInteger(route) && route >= 1 && route <= routes ? route : null;
  });
}

/** The routes to POST: every image's own route, DEFAULT_ROUTE where it has none. */
export function routesToSend(assigned) {
  return assigned.map((route) => route ?? DEFAULT_ROUTE);
}

/** [{route, count}] in route order, for the routes a list sends images down. */
export function routeCounts(routes) {
  const counts = new Map();
  for (const route of routes) counts.set(route, (counts.get(route) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => a[0] - b[0]).map(([route, count]) => ({ route, count }));
}

/** The single route when every image goes the same way, else null. */
export function singleRoute(routes) {
  return routes.length && routes.every((r) => r === routes[0]) ? routes[0] : null;
}

/**
 * Which batch images are selected, with the click rules of a file manager: a click selects
 * one (or clears the selection when it was the only one), ctrl/cmd-click toggles one,
 * shift-click selects the range from the last plain or ctrl click.
 */
export class GridSelection {
  constructor(batch = 0) {
    this.reset(batch);
  }

  reset(batch) {
    this.batch = batch;
    this.selected = new Set();
    this.anchor = 0;
    this.cursor = 0; // the image the arrow keys move from, and the one Space enlarges
  }

  get size() {
    return this.selected.size;
  }

  has(index) {
    return this.selected.has(index);
  }

  /** Selected indices in batch order. */
  list() {
    return [...this.selected].sort((a, b) => a - b);
  }

  click(index, { shift = false, ctrl = false } = {}) {
    if (index < 0 || index >= this.batch) return;
    if (shift) {
      const [from, to] = this.anchor <= index ? [this.anchor, index] : [index, this.anchor];
      if (!ctrl) this.selected.clear();
      for (let i = from; i <= to; i++) this.selected.add(i);
    } else if (ctrl) {
      if (this.selected.has(index)) this.selected.delete(index);
      else this.selected.add(index);
      this.anchor = index;
    } else {
      const only = this.selected.size === 1 && this.selected.has(index);
      this.selected.clear();
      if (!only) this.selected.add(index);
      this.anchor = index;
    }
    this.cursor = index;
  }

  /** Select `index` alone (and move the cursor and anchor there). */
  only(index) {
    if (index < 0 || index >= this.batch) return;
    this.selected.clear();
    this.selected.add(index);
    this.anchor = index;
    this.cursor = index;
  }

  /** Arrow keys: move the cursor by `step` and select it (shift: extend from the anchor). */
  move(step, { shift = false } = {}) {
    const next = Math.min(this.batch - 1, Math.max(0, this.cursor + step));
    if (shift) this.click(next, { shift: true });
    else this.only(next);
  }

  all() {
    for (let i = 0; i < this.batch; i++) this.selected.add(i);
  }

  clear() {
    this.selected.clear();
  }
}

/** Seconds left until `deadline` (epoch seconds), never below 0; null without a deadline. */
export function secondsLeft(deadline, now = Date.now() / 1000) {
  return typeof deadline === "number" && Number.isFinite(deadline) ? Math.max(0, deadline - now) : null;
}

/** "1:05" or "42 s". */
export function clock(seconds) {
  const s = Math.ceil(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}` : `${s} s`;
}

/** What happens when the countdown runs out, in words ("park", "stop", "route 2"; a Text
 *  Gate's "pass"). */
export function onTimeoutText(onTimeout, routeName = (r) => `route ${r}`) {
  const text = String(onTimeout ?? "");
  if (text === "park") return "parks the batch in a slot";
  if (text === "stop") return "stops the run";
  if (text === "pass") return "passes the text on as it came";
  const route = /^route (\d+)$/.exec(text);
  if (route) return `sends every image down ${routeName(Number(route[1]))}`;
  return text ? `does "${text}"` : "ends the pause";
}
