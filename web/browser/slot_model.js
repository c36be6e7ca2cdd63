// The slot browser's model: the bus's slots, the filter, the open slot (the batch image or its
// mask on screen, its kept versions and the one shown), checksum checks and resumes started
// from this page (here or on another worker of the farm, and with the batch decided here), the
// parked-runs filter, the Datasets panel (the reports of the folders read lately and of a folder
// typed here, the folders remembered), and every request, through the bus's routes (busApi,
// web/gate_api.js) on the page's HTTP client. It has no DOM: after each change it calls onChange, and the view (slot_browser.js) draws what
// view() describes, the way GateController feeds GatePanel. Imports nothing from ComfyUI. No
// side effects.
import { bucketRows, countText } from "../dataset_view.js";
import { busApi } from "../gate_api.js";
import { MAX_ROUTES, routeTitle } from "../gate_outputs.js";
import { fetchClient } from "../http.js";

/** What a slot file that failed its checksum answers (GET /bus/verify, /bus/tensors). */
const DAMAGED = 422;

const RESUME_POLL_MS = 1000;
/** Cards drawn at a time: a bus of 10,000 slots draws 200, and "Show more" adds as many. */
export const CARDS_PAGE = 200;
const FINAL_STATES = new Set(["done", "failed", "stopped", "unknown"]);

/** Where the last Resume target chosen is kept ("" for this ComfyUI, else a worker URL). */
export const TARGET_KEY = "dataset_gates.resume_target";
/** Where a parked batch decided here goes by default, as at the pause: an image given no
 *  route goes down route 1. */
export const DEFAULT_ROUTE = 1;

/** Where the Datasets panel keeps the folders typed here (newest first) and whether it is open. */
export const FOLDERS_KEY = "dataset_gates.dataset_folders";
export const DATASETS_OPEN_KEY = "dataset_gates.datasets_open";
const FOLDERS_KEPT = 12;
/** The deepest listing a report may ask for (gates/dataset/scan.py MAX_DEPTH). */
export const MAX_DATASET_DEPTH = 32;

/**
 * A dataset report (GET /dataset/recent's rows, GET /dataset/report) as the Datasets panel
 * draws it: its folder and depth; then its error, or its progress line, what its kept set is
 * (the route labelled keep, else the first decided) and that set's bucket counts.
 * @returns {{folder: string, depth: number, error: string|null, progress: string, kept: string,
 *   buckets: {bucket: string, count: number, text: string, share: number}[]}}
 */
export function reportRow(report) {
  const folder = String(report?.folder ?? "");
  const depth = Number(report?.depth) || 0;
  if (!report || typeof report !== "object" || report.error) {
    return { folder, depth, error: String(report?.error || "not a report"), progress: "", kept: "", buckets: [] };
  }
  const routes = Array.isArray(report.routes) ? report.routes : [];
  const route = report.kept === null || report.kept === undefined ? null : routes.find((r) => r?.route === report.kept);
  const buckets = bucketRows(report.buckets);
  let kept = "nothing decided yet";
  if (route) {
    const n = Number(route.count) || 0;
    kept = `kept set: ${route.label || `route ${route.route}`}, ${countText(n)} file${n === 1 ? "" : "s"}`
      + (buckets.length ? " in buckets:" : n ? " (no sizes known: no buckets)" : "");
  }
  return { folder, depth, error: null, progress: String(report.progress ?? ""), kept, buckets };
}

/** The rows of GET /dataset/recent's reports. */
export function reportRows(reports) {
  return (Array.isArray(reports) ? reports : []).map(reportRow);
}

/** `folders` ([{folder, depth}], newest first) with `folder` at the front, once, at most `limit`. */
export function rememberFolder(folders, folder, depth, limit = FOLDERS_KEPT) {
  return [{ folder, depth }, ...folders.filter((f) => f.folder !== folder)].slice(0, limit);
}

/** The page's localStorage, or null where it cannot be used (disabled by policy). */
function pageStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

/** The folders kept in `storage` under FOLDERS_KEY; [] when none or unreadable. */
export function storedFolders(storage) {
  try {
    const list = JSON.parse(storage?.getItem(FOLDERS_KEY) ?? "[]");
    return Array.isArray(list) ? list.filter((f) => typeof f?.folder === "string" && f.folder)
      .map((f) => ({ folder: f.folder, depth: Math.max(0, Math.trunc(Number(f.depth)) || 0) })) : [];
  } catch {
    return [];
  }
}

/** A slot a gate parked when its countdown ran out (meta.parked). */
export function isParked(slot) {
  return slot?.meta?.parked === true;
}

/** The worker that parked `slot` (meta.worker: its DATASET_GATES_WORKER or host:port), or "". */
export function parkedBy(slot) {
  const worker = slot?.meta?.worker;
  return typeof worker === "string" ? worker : "";
}

/** Whether the worker URL `url` is the worker named `name` (its host:port, or the whole URL). */
export function isWorker(url, name) {
  if (!name) return false;
  try {
    return new URL(url).host === name || url === name;
  } catch {
    return url === name;
  }
}

/** Route labels from a gate's comma- or newline-separated `labels` input, blanks as numbers
 *  (as gates/gate/run.py parse_labels reads them). */
export function parseLabels(text, routes) {
  const given = typeof text === "string" && text ? text.replace(/\n/g, ",").split(",").map((t) => t.trim()) : [];
  return Array.from({ length: routes }, (_, i) => given[i] || String(i + 1));
}

/**
 * A parked run's gate as its slot's meta records it (meta.prompt[meta.node].inputs): its route
 * count and labels, or routes null when the count is not set there (wired to another node).
 * Only for drawing: the ComfyUI that resumes checks the prompt's seal.
 * @returns {{routes: number|null, labels: string[]}}
 */
export function gateRoutes(slot) {
  const meta = slot?.meta ?? {};
  const inputs = meta.prompt?.[meta.node]?.inputs;
  const routes = inputs?.routes;
  if (!Number.isInteger(routes) || routes < 1 || routes > MAX_ROUTES) return { routes: null, labels: [] };
  return { routes, labels: parseLabels(inputs.labels, routes) };
}

/** Why `routes` is not a decision for a batch of `batch` on `count` routes; "" when it is. */
export function decisionError(routes, batch, count) {
  if (!Array.isArray(routes) || routes.length !== batch) return `Give each of the ${batch} images a route.`;
  const bad = routes.findIndex((r) => !Number.isInteger(r) || r < 1 || r > count);
  return bad < 0 ? "" : `Image ${bad + 1} has no route of 1 to ${count}.`;
}

/** "route 1 · keep: 3 images, route 2: 1 image" for a decision. */
export function decisionText(routes, labels) {
  const counts = new Map();
  for (const r of routes) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts.entries()].sort(([a], [b]) => a - b)
    .map(([r, n]) => `${routeTitle(labels, r)}: ${n} image${n === 1 ? "" : "s"}`).join(", ");
}

/** "Resume will run 3 nodes: KSampler ×1, ..." from GET /resume/{id}'s plan. */
export function planText(plan) {
  const nodes = (plan.nodes ?? []).map((n) => `${n.class_type} ×${n.count}`).join(", ");
  return `Resume will run ${plan.count} node${plan.count === 1 ? "" : "s"}: ${nodes}`;
}

/**
 * @typedef {object} Card
 * @property {object} slot         the server's row (GET /bus/list)
 * @property {string} thumbUrl     the row's own thumb_url, as this page loads it
 * @property {string|null} resume  how a resume of it from this page goes, if one was started
 * @property {string} parkedBy     the worker that parked it ("" when not parked, or not named)
 * @property {string|null} damage  why it is damaged: its row's error, or a failed checksum
 *   found from this page (a listing reads headers only)
 *
 * @typedef {object} Detail
 * @property {number} key          changes when the detail must be drawn anew
 * @property {object} slot         the version on screen (the slot itself, or id@-N)
 * @property {object} owner        the slot: rename, pin and delete act on it, not on a version
 * @property {string} ref          the version's ref (id or id@-N)
 * @property {number} index        the batch image on screen
 * @property {"image"|"mask"} layer  what the viewer shows of it
 * @property {string} imageUrl     the layer on screen (the image, or its mask)
 * @property {string} tensorsUrl   the exact slot file
 * @property {string|null} damage  why the version on screen is damaged (see Card)
 * @property {{text: string, busy: boolean}|null} check  its checksum check from this page,
 *   running or passed (a failed one is its damage)
 * @property {{ref: string, created: number, version: number, thumbUrl: string, current: boolean}[]} versions
 * @property {{text: string, error: boolean, busy: boolean}|null} run  a resume of the slot started here
 * @property {boolean} canResume   inside ComfyUI (given `resume`); the standalone page cannot
 *   queue here, only on a worker of `targets`
 * @property {{text: string, ready: boolean, refused: boolean}|null} plan  what Resume would run
 *   here (ready: it may be confirmed), or why this ComfyUI refuses to (refused); null if not asked
 * @property {{value: string, label: string}[]} targets  where Resume may queue: "" this ComfyUI
 *   (only given `resume`), then each worker of GET /workers
 * @property {string|null} target  the one chosen (null: none to choose)
 * @property {string} workersNote  the workers still being asked, or why they could not be
 * @property {Decision|null} decide  the batch being decided here (null: not deciding)
 * @property {string[]} batchUrls  while deciding, each batch image's URL (GET /bus/image)
 *
 * @typedef {object} Decision
 * @property {number} batch        its images
 * @property {number|null} count   its gate's routes (null: not known here, so no deciding)
 * @property {string[]} labels     one per route
 * @property {number[]} routes     one per image, 1-based (route 1 unless changed)
 * @property {string} summary      how many images go down each route
 * @property {string} error        why it cannot be sent yet ("" when it can)
 *
 * @typedef {object} DatasetsView
 * @property {number} key          changes when the panel's reports must be drawn anew
 * @property {boolean} open        the panel is expanded
 * @property {boolean} busy        a request of the panel is out
 * @property {{text: string, isError: boolean}} message  why a listing failed (text, never thrown)
 * @property {ReturnType<typeof reportRow>[]|null} recent  the folders read lately; null until asked
 * @property {{folder: string, depth: number, busy: boolean, row: ReturnType<typeof reportRow>|null,
 *   error: string}|null} asked  the report of the folder typed here
 * @property {{folder: string, depth: number}[]} folders  the folders typed here, newest first
 *
 * @typedef {object} BrowserView
 * @property {string} bus          the bus folder's name
 * @property {{text: string, isError: boolean}} message
 * @property {{key: number, cards: Card[], total: number, more: number}|null} grid  the first
 *   `cardLimit` slots the filter lets through (`more`: how many more it lets through); null
 *   until the first listing
 * @property {Detail|null} detail  the open slot, or null for the grid
 * @property {{count: number, only: boolean}} parked  the parked runs listed, and whether the
 *   grid shows only them
 * @property {DatasetsView} datasets  the Datasets panel
 */

export class SlotBrowserModel {
  /**
   * @param {{bus?: object, resume?: (id: string, options?: {routes?: number[]}) => Promise<{prompt_id: string}>,
   *   promptState?: (promptId: string) => Promise<string>, onChange?: () => void}} options
   *   bus: busApi (web/gate_api.js) on the server's client (the standalone page's window.fetch
   *   at "" by default); a resume on another worker goes through its resume(id, {worker}).
   *   resume / promptState: given inside ComfyUI only (POST /resume/{id} with the tab's client
   *   id, and `routes` when decided here; where that prompt is now); without them a parked slot
   *   is resumed only on the workers GET /workers lists, or says why it cannot be. storage: where the Datasets panel remembers its folders
   *   (the page's localStorage by default; null: nowhere).
   */
  constructor({
    bus = busApi(fetchClient()), resume = null, promptState = null, onChange = () => {}, storage = pageStorage(),
  } = {}) {
    this.busApi = bus; // its requests; this.bus is the bus folder's name
    this.resumeSlot = resume;
    this.promptState = promptState;
    this.onChange = onChange;
    this.bus = "";
    this.slots = [];
    this.filter = "";
    this.open = null; // the open slot (its latest version)
    this.index = 0;
    this.versions = []; // the open slot's kept versions, newest first
    this.shown = null; // the version on screen when not the latest
    this.layer = "image"; // or "mask": what the viewer shows of the batch image
    this.checks = new Map(); // "ref|checksum" -> {busy} | {ok} | {error}: checks made here
    this.resumed = new Map(); // slot id -> {promptId, state, error}: resumes from this page
    this.plan = null; // the open parked slot's {id, created, text, ready, refused, routes, labels}
    this.workers = null; // GET /workers once asked (a listing with a parked run asks)
    this.workersError = "";
    this.decision = null; // {id, created, routes}: the open parked batch being decided here
    this.parkedOnly = false; // the grid lists only parked runs
    this.message = { text: "", isError: false, kind: "" }; // kind "list": a failed listing
    this.listed = false; // the first GET /bus/list answered
    this.etag = null; // the listing's tag: a refresh of an unchanged bus is a 304, slots kept
    this.cardLimit = CARDS_PAGE; // cards the grid draws (see showMore)
    this.gridKey = 0;
    this.detailKey = 0;
    this.polling = null;
    this.destroyed = false;
    this.storage = storage;
    this.target = this.stored(TARGET_KEY); // the Resume target last chosen; null: none yet
    this.datasets = {
      open: this.stored(DATASETS_OPEN_KEY) === "1",
      busy: 0, // requests out
      recent: null, // GET /dataset/recent's reports, once asked
      error: "", // why the last listing failed
      asked: null, // {folder, depth, busy, report, error}: the folder typed here
      folders: storedFolders(storage),
    };
    this.datasetsKey = 0;
  }

  stored(key) {
    try {
      return this.storage?.getItem(key) ?? null;
    } catch {
      return null;
    }
  }

  store(key, value) {
    try {
      this.storage?.setItem(key, value);
    } catch { /* full or disabled: this page view only */ }
  }

  changed({ grid = false, detail = false, datasets = false } = {}) {
    if (grid) this.gridKey++;
    if (detail) this.detailKey++;
    if (datasets) this.datasetsKey++;
    if (!this.destroyed) this.onChange();
  }

  say(text, isError = false, kind = "") {
    this.message = { text: text || "", isError: Boolean(isError && text), kind };
    this.changed();
  }

  /** List the bus again (and the datasets, while their panel is open); an unchanged bus
   *  answers 304 and the cards drawn stay as they are. */
  async refresh() {
    if (this.datasets.open) this.refreshDatasets();
    try {
      const reply = await this.busApi.listIfChanged(this.etag);
      const cleared = this.message.kind === "list";
      if (cleared) this.message = { text: "", isError: false, kind: "" };
      if (!reply) {
        if (cleared) this.changed();
        return;
      }
      this.bus = reply.bus;
      this.slots = reply.slots;
      this.etag = reply.etag;
      this.listed = true;
      if (this.workers === null && !this.workersError && this.slots.some(isParked)) this.loadWorkers();
      if (this.open) {
        const fresh = this.slots.find((s) => s.id === this.open.id);
        if (fresh) this.openSlot(fresh, this.index);
        else this.close();
      }
      this.changed({ grid: true });
    } catch (err) {
      this.say(`Could not list slots: ${err.message}`, true, "list");
    }
  }

  setFilter(text) {
    this.filter = text;
    this.cardLimit = CARDS_PAGE;
    this.changed({ grid: true });
  }

  /** List only the parked runs (true), or every slot. */
  showParkedOnly(only) {
    this.parkedOnly = Boolean(only);
    this.cardLimit = CARDS_PAGE;
    this.changed({ grid: true });
  }

  /** Ask the server which workers a parked run may be resumed on; never throws (a failure is
   *  shown in the parked slot's box). A bus without the route (a stand-in) has none. */
  async loadWorkers() {
    if (typeof this.busApi.workers !== "function") {
      this.workers = [];
      return;
    }
    this.workersError = "";
    this.workers = null;
    try {
      this.workers = await this.busApi.workers();
    } catch (err) {
      this.workersError = `Could not list the farm's workers: ${err.message}`;
    }
    this.changed({ detail: true });
  }

  /** Draw CARDS_PAGE more cards of the grid. */
  showMore() {
    this.cardLimit += CARDS_PAGE;
    this.changed({ grid: true });
  }

  openSlot(slot, index) {
    if (!this.open || this.open.id !== slot.id) {
      this.versions = [];
      this.shown = null;
      this.layer = "image";
    }
    this.open = slot;
    if (this.decision && (this.decision.id !== slot.id || this.decision.created !== slot.created
      || !isParked(slot) || this.decision.routes.length !== slot.batch)) this.decision = null;
    if (slot.versions > 1) this.loadVersions(slot);
    if (this.resumeSlot && isParked(slot) && slot.meta.prompt
      && (this.plan?.id !== slot.id || this.plan.created !== slot.created)) this.loadPlan(slot);
    this.index = Math.min(Math.max(0, index), Math.max(0, (slot.batch || 1) - 1));
    this.changed({ detail: true });
  }

  async loadVersions(slot) {
    try {
      const versions = await this.busApi.history(slot.id);
      if (this.open?.id !== slot.id) return;
      this.versions = versions;
      this.shown = this.versions.find((v) => v.ref === this.shown?.ref) || null;
      this.changed({ detail: true });
    } catch (err) {
      this.say(`Could not list versions of ${slot.id}: ${err.message}`, true);
    }
  }

  /** Ask what resuming `slot` would run (or why this ComfyUI refuses to), for the view to show
   *  before the person confirms. */
  async loadPlan(slot) {
    const key = { id: slot.id, created: slot.created };
    this.plan = { ...key, text: "Checking what Resume would run…", ready: false, refused: false };
    let plan;
    try {
      const reply = await this.busApi.resumePlan(slot.id);
      plan = { text: planText(reply), ready: true, refused: false };
      if (Number.isInteger(reply.routes)) {
        plan.routes = reply.routes;
        plan.labels = Array.isArray(reply.labels) ? reply.labels.map(String) : parseLabels("", reply.routes);
      }
    } catch (err) {
      const refused = err.status === 403;
      plan = { text: refused ? `Not resumable here: ${err.message}` : `Could not check what Resume would run: ${err.message}`,
        ready: false, refused };
    }
    if (this.plan?.id !== slot.id || this.plan.created !== slot.created) return; // another slot opened since
    this.plan = { ...key, ...plan };
    this.changed({ detail: true });
  }


  /** Show a kept version (a strip entry of detail().versions): its own row of the history. */
  showVersion(version) {
    const row = this.versions.find((v) => v.ref === version.ref);
    this.shown = row?.version ? row : null;
    this.index = Math.min(this.index, Math.max(0, ((this.shown || this.open)?.batch || 1) - 1));
    this.changed({ detail: true });
  }

  close() {
    this.open = null;
    this.decision = null;
    this.versions = [];
    this.shown = null;
    this.changed({ detail: true });
  }

  /** Back to the grid, clearing the last message. */
  back() {
    this.close();
    this.say("");
  }

  /** The next (1) or previous (-1) batch image of the version on screen. */
  page(step) {
    const slot = this.shown || this.open;
    if (!slot || slot.error) return;
    const next = this.index + step;
    if (next < 0 || next >= slot.batch) return;
    this.index = next;
    this.changed({ detail: true });
  }

  /** Show batch image `index` of the version on screen. */
  showImage(index) {
    const slot = this.shown || this.open;
    if (!slot || slot.error || !Number.isInteger(index) || index < 0 || index >= slot.batch) return;
    this.index = index;
    this.changed({ detail: true });
  }

  /** Show the image (`"image"`) or its mask (`"mask"`). */
  showLayer(layer) {
    this.layer = layer === "mask" ? "mask" : "image";
    this.changed({ detail: true });
  }

  /** A check of `slot`'s checksum made from this page, keyed by its content. */
  checkOf(slot) {
    return this.checks.get(`${slot.ref || slot.id}|${slot.checksum}`) ?? null;
  }

  /** Why `slot` is damaged, as far as this page knows: its row's error or a failed check. */
  damageOf(slot) {
    return slot.error || this.checkOf(slot)?.error || null;
  }

  /**
   * Read the whole slot file of `slot` (a version) on the server and check its checksum.
   * Resolves to whether it holds; a failure marks the slot damaged here (a 422) or says why
   * the check could not be made.
   */
  async verify(slot) {
    const ref = slot.ref || slot.id;
    const key = `${ref}|${slot.checksum}`;
    this.checks.set(key, { busy: true });
    this.changed({ detail: true });
    let ok = false;
    try {
      await this.busApi.verify(ref);
      this.checks.set(key, { ok: true });
      ok = true;
    } catch (err) {
      if (err.status === DAMAGED) this.checks.set(key, { error: err.message });
      else {
        this.checks.delete(key);
        this.say(`Could not check ${ref}: ${err.message}`, true);
      }
    }
    this.changed({ grid: true, detail: true });
    return ok;
  }

  /**
   * Whether the download of `slot` may start: checked first, as a failed download's error
   * never reaches the page (the browser's download bar only says it failed).
   */
  async download(slot) {
    return Boolean(this.checkOf(slot)?.ok) || this.verify(slot);
  }

  async pin(id, pinned) {
    try {
      this.open = await this.busApi.pin(id, pinned);
      await this.refresh();
      this.say(pinned ? `Pinned ${id}: the bus quota never removes it.` : `Unpinned ${id}.`);
    } catch (err) {
      this.say(`Pin failed: ${err.message}`, true);
    }
  }

  async rename(id, to, overwrite) {
    try {
      const info = await this.busApi.rename(id, to, overwrite);
      this.open = info;
      await this.refresh();
      this.say(`Renamed ${id} to ${info.id}.`);
    } catch (err) {
      this.say(`Rename failed: ${err.message}`, true);
    }
  }

  /** Delete the slot for good (the view asks the user first). */
  async remove(id) {
    try {
      await this.busApi.delete(id);
      this.close();
      await this.refresh();
      this.say(`Deleted ${id}.`);
    } catch (err) {
      this.say(`Delete failed: ${err.message}`, true);
    }
  }

  // -- resuming a parked run: where, and with the batch decided here ------------------------
  /** Where Resume may queue the open parked run: this ComfyUI ("", given `resume`, unless it
   *  refused the run) and each worker the server lists, the one that parked it marked. */
  targets(slot = this.open) {
    const by = parkedBy(slot);
    const refused = this.plan?.id === slot?.id && this.plan.refused; // its seal is not this ComfyUI's
    const here = this.resumeSlot && !refused ? [{ value: "", label: "this ComfyUI" }] : [];
    return [...here, ...(this.workers ?? []).map((url) => ({
      value: url, label: isWorker(url, by) ? `${url} (parked it)` : url,
    }))];
  }

  /** The target chosen for `slot`: the last one picked while it is offered, else this ComfyUI,
   *  else the worker that parked it, else the first worker; null when there is none. */
  targetOf(slot = this.open) {
    const targets = this.targets(slot);
    if (targets.some((t) => t.value === this.target)) return this.target;
    const by = targets.find((t) => t.value && isWorker(t.value, parkedBy(slot)));
    return (targets[0]?.value === "" ? "" : by?.value ?? targets[0]?.value) ?? null;
  }

  /** Resume on `value` ("" this ComfyUI, else a worker URL) from now on; remembered. */
  setTarget(value) {
    this.target = String(value ?? "");
    this.store(TARGET_KEY, this.target);
    this.changed({ detail: true });
  }

  /** The open parked run's gate: its routes and labels, from this ComfyUI's plan (read from
   *  the sealed prompt) when it has one, else from the slot's meta. */
  gateOf(slot = this.open) {
    const plan = this.plan?.id === slot?.id && this.plan.created === slot?.created ? this.plan : null;
    return plan?.routes ? { routes: plan.routes, labels: plan.labels } : gateRoutes(slot);
  }

  /** Decide the open parked batch here (true): every image starts on route 1, as at the pause
   *  an image given none goes down route 1; false drops the decision. */
  decideHere(on) {
    const slot = this.open;
    this.decision = on && isParked(slot)
      ? { id: slot.id, created: slot.created, routes: Array(slot.batch).fill(DEFAULT_ROUTE) } : null;
    this.changed({ detail: true });
  }

  /** Send batch image `index` down `route` (a route key or button), then show the next image,
   *  as a route key does at the pause. */
  setRoute(index, route) {
    const d = this.decision;
    const { routes } = this.gateOf();
    if (!d || !routes || !Number.isInteger(route) || route < 1 || route > routes) return;
    if (index < 0 || index >= d.routes.length) return;
    d.routes[index] = route;
    if (index === this.index && index < d.routes.length - 1) this.index = index + 1;
    this.changed({ detail: true });
  }

  /** A route key: the image on screen goes down `route`, and the next one shows. */
  routeKey(route) {
    this.setRoute(this.index, route);
  }

  /** The decision of the open batch as the view draws it; null when not deciding. */
  decisionView() {
    const d = this.decision;
    if (!d || d.id !== this.open?.id) return null;
    const { routes: count, labels } = this.gateOf();
    const error = count ? decisionError(d.routes, this.open.batch, count)
      : "The gate's route count is wired to another node in its prompt: decide this batch at the pause (Resume).";
    return {
      batch: this.open.batch, count, labels, routes: [...d.routes],
      summary: count ? decisionText(d.routes, labels) : "", error,
    };
  }

  /**
   * Queue the parked run of slot `id` on the target chosen (this ComfyUI, or the worker: the
   * server forwards it). With `decided` the routes decided here go with it, so its gate takes
   * them as its answer and the run goes on without pausing. A refusal (the worker unreachable:
   * 502; not listed: 400; the seal: 403) shows as the run's text; nothing is thrown.
   */
  async resume(id, { decided = false } = {}) {
    const slot = this.slots.find((s) => s.id === id) ?? (this.open?.id === id ? this.open : null);
    const worker = this.targetOf(slot);
    if (worker === null) return;
    let routes = null;
    if (decided) {
      const d = this.decisionView();
      if (!d || d.error || this.decision.id !== id) {
        this.say(d?.error || "Decide the batch first.", true);
        return;
      }
      routes = d.routes;
    }
    const created = slot?.created ?? null; // a worker's run holds Resume off for this version only
    this.resumed.set(id, { promptId: null, state: "queueing", error: null, worker, decided: Boolean(routes), created });
    this.changed({ grid: true, detail: true });
    const options = routes ? { routes, created } : {}; // the version decided on: a newer one is refused
    try {
      const reply = worker ? await this.busApi.resume(id, { ...options, worker }) : await this.resumeSlot(id, options);
      const promptId = reply?.prompt_id ?? "?";
      this.resumed.set(id, { promptId, state: "queued", error: null, worker, decided: Boolean(routes), created });
      const goes = routes ? "it goes on with the routes decided here, without pausing"
        : worker ? "its gate pauses there: open that ComfyUI to answer it (any of its tabs can take the pause over)"
          : "its gate pauses in this tab";
      this.message = { text: `Resumed ${id} on ${worker || "this ComfyUI"}: prompt ${promptId} is queued; ${goes}.`,
        isError: false, kind: "" };
      if (routes) this.decision = null;
    } catch (err) {
      this.resumed.set(id, { promptId: null, state: "", error: err.message, worker, decided: Boolean(routes), created });
    }
    this.changed({ grid: true, detail: true });
    this.pollResumed();
  }

  /** Follow resumed prompts until they end (a few requests a second, only while some run). */
  pollResumed() {
    if (this.polling || this.destroyed || !this.promptState) return;
    // Only prompts of this ComfyUI: another worker's queue is not this page's to read.
    const live = [...this.resumed.entries()].filter(([, r]) => r.promptId && !r.worker && !FINAL_STATES.has(r.state));
    if (!live.length) return;
    this.polling = setTimeout(async () => {
      for (const [id, run] of live) {
        try {
          const now = await this.promptState(run.promptId);
          if (now !== run.state) {
            this.resumed.set(id, { ...run, state: now });
            this.changed({ grid: true, detail: true });
          }
        } catch { /* try again on the next round */ }
      }
      this.polling = null;
      this.pollResumed();
    }, RESUME_POLL_MS);
  }

  /** A resume of slot `id` started here, as the page shows it; null if none was. */
  runOf(id) {
    const run = this.resumed.get(id);
    if (!run) return null;
    const where = run.worker ? ` on ${run.worker}` : "";
    // A worker's prompt is not followed from here: once queued there, Resume stays off for the
    // slot (a second one would queue the run twice) while it is the version that was resumed.
    const now = this.slots.find((s) => s.id === id) ?? (this.open?.id === id ? this.open : null);
    const busy = !run.error && (run.worker ? !run.promptId || (now?.created ?? null) === run.created : !FINAL_STATES.has(run.state));
    if (run.error) return { text: `Resume${where} failed: ${run.error}`, error: true, busy };
    if (!run.promptId) return { text: `Resuming${where}…`, error: false, busy };
    const decided = run.decided ? " with the routes decided here" : "";
    if (run.worker) return { text: `Queued${where} as prompt ${run.promptId}${decided}`, error: false, busy };
    return { text: `Resumed as prompt ${run.promptId}${decided}: ${run.state}`, error: false, busy };
  }

  // -- the Datasets panel ----------------------------------------------------------------------
  /** Expand (true) or collapse the panel; the first time it opens, it lists the datasets
   *  (resolves when that listing is in). */
  async showDatasets(open) {
    const d = this.datasets;
    if (d.open === Boolean(open)) return;
    d.open = Boolean(open);
    this.store(DATASETS_OPEN_KEY, d.open ? "1" : "0");
    const listing = d.open && d.recent === null ? this.refreshDatasets() : null;
    this.changed({ datasets: true });
    await listing;
  }

  /** Ask for the folders read lately (and the typed folder's report again). Never throws. */
  async refreshDatasets() {
    const d = this.datasets;
    const asked = d.asked;
    if (asked && !asked.busy) this.askDataset(asked.folder, asked.depth, { remember: false });
    d.busy++;
    this.changed({ datasets: true });
    try {
      d.recent = await this.busApi.datasetRecent();
      d.error = "";
    } catch (err) {
      d.error = `Could not list the datasets: ${err.message}`;
    } finally {
      d.busy--;
    }
    this.changed({ datasets: true });
  }

  /**
   * The report of a folder typed here, listed to `depth`; a folder that reports is remembered
   * (newest first). A refusal is shown as its text. Never throws.
   */
  async askDataset(folder, depth = 0, { remember = true } = {}) {
    const d = this.datasets;
    const name = String(folder ?? "").trim();
    const deep = Math.min(MAX_DATASET_DEPTH, Math.max(0, Math.trunc(Number(depth)) || 0));
    if (!name) {
      d.asked = { folder: "", depth: deep, busy: false, report: null, error: "Type a dataset folder on the server first." };
      this.changed({ datasets: true });
      return;
    }
    const ask = { folder: name, depth: deep, busy: true, report: null, error: "" };
    d.asked = ask;
    this.changed({ datasets: true });
    try {
      ask.report = await this.busApi.datasetReport(name, deep);
      if (remember) {
        d.folders = rememberFolder(d.folders, name, deep);
        this.store(FOLDERS_KEY, JSON.stringify(d.folders));
      }
    } catch (err) {
      ask.error = `Could not report ${name}: ${err.message}`;
    }
    ask.busy = false;
    if (d.asked === ask) this.changed({ datasets: true });
  }

  /** @returns {DatasetsView} */
  datasetsView() {
    const d = this.datasets;
    const asked = d.asked;
    return {
      key: this.datasetsKey,
      open: d.open,
      busy: d.busy > 0 || Boolean(asked?.busy),
      message: { text: d.error, isError: Boolean(d.error) },
      recent: d.recent === null ? null : reportRows(d.recent),
      asked: asked ? {
        folder: asked.folder, depth: asked.depth, busy: asked.busy, error: asked.error,
        row: asked.report ? reportRow(asked.report) : null,
      } : null,
      folders: d.folders,
    };
  }

  destroy() {
    this.destroyed = true;
    clearTimeout(this.polling);
  }

  /** @returns {BrowserView} */
  view() {
    const needle = this.filter.trim().toLowerCase();
    const shown = this.slots.filter((s) => (!needle || s.id.toLowerCase().includes(needle))
      && (!this.parkedOnly || isParked(s)));
    return {
      bus: this.bus,
      message: this.message,
      parked: { count: this.slots.filter(isParked).length, only: this.parkedOnly },
      grid: this.listed ? {
        key: this.gridKey,
        total: this.slots.length,
        more: Math.max(0, shown.length - this.cardLimit),
        cards: shown.slice(0, this.cardLimit).map((slot) => ({
          slot, thumbUrl: this.busApi.thumbUrl(slot), resume: this.runOf(slot.id)?.text ?? null, damage: this.damageOf(slot),
          parkedBy: isParked(slot) ? parkedBy(slot) : "",
        })),
      } : null,
      detail: this.open ? this.detail() : null,
      datasets: this.datasetsView(),
    };
  }

  /** @returns {Detail} */
  detail() {
    const slot = this.shown || this.open;
    const ref = slot.ref || slot.id;
    const current = slot.ref || this.open.id;
    const layer = slot.mask_shape ? this.layer : "image";
    const check = this.checkOf(slot);
    return {
      key: this.detailKey,
      slot,
      owner: this.open,
      ref,
      index: this.index,
      layer,
      imageUrl: layer === "mask" ? this.busApi.maskUrl(ref, this.index, slot.checksum)
        : this.busApi.imageUrl(ref, this.index, slot.checksum),
      tensorsUrl: this.busApi.tensorsUrl(ref),
      damage: this.damageOf(slot),
      check: check && !check.error ? {
        busy: Boolean(check.busy),
        text: check.busy ? "Checking the checksum…" : "Checksum OK: the file is as it was published.",
      } : null,
      versions: this.versions.length < 2 ? [] : this.versions.map((v) => ({
        ref: v.ref, created: v.created, version: v.version, thumbUrl: this.busApi.thumbUrl(v), current: v.ref === current,
      })),
      run: this.runOf(this.open.id),
      canResume: Boolean(this.resumeSlot),
      plan: this.plan?.id === this.open.id ? { text: this.plan.text, ready: this.plan.ready, refused: this.plan.refused } : null,
      targets: this.targets(),
      target: this.targetOf(),
      workersNote: this.workersError || (this.workers === null && isParked(this.open) ? "Asking for the farm's workers…" : ""),
      decide: this.decisionView(),
      batchUrls: this.decision ? Array.from({ length: this.open.batch },
        (_, i) => this.busApi.imageUrl(this.open.id, i, this.open.checksum)) : [],
    };
  }
}
