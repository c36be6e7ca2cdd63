// The pack's HTTP routes as seen from the ComfyUI page (api.fetchApi adds /api and auth).
// No side effects: ComfyUI imports every .js under web/ as a module.
import { api } from "../../scripts/api.js";
import { errorText, readJson } from "./format.js";

export const PREFIX = "/datasete_gate";

/** A refused request; `status` is the HTTP status (409 = that pause is not this tab's, or over). */
export class GateError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function call(path, init = {}) {
  const response = await api.fetchApi(PREFIX + path, { cache: "no-store", ...init });
  if (!response.ok) throw new GateError(await errorText(response), response.status);
  return readJson(response);
}

function postJson(path, body) {
  return call(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

/** POST /mask as multipart: the pause's node and token, then what `fill` adds. */
function postMask(node, token, fill) {
  const form = new FormData();
  form.append("node", node);
  form.append("token", token);
  fill(form);
  return call("/mask", { method: "POST", body: form });
}

/**
 * This tab's websocket client id: the server targets pause events (and pending) at it.
 * Before the socket's first status message, window.name holds the id a reloaded tab will
 * reconnect with (ComfyUI keeps it there; sessionStorage is copied into duplicated tabs).
 */
export function clientId() {
  return api.clientId ?? (window.name || null);
}

/** One pause across GET /pending answers, with or without its token (a take-over keeps `created`). */
export const pauseKey = (data) => `${data.node}@${data.created}`;

export const gateApi = {
  /** Full URL of the routes, for code that builds <img src> or fetches on its own. */
  base: () => api.apiURL(PREFIX),
  /** A batch image of a pause as PNG; `side` (64..1024) asks for a smaller one (grid: 160). */
  previewUrl(node, token, index, side = null) {
    const query = new URLSearchParams({ node, token, index: String(index) });
    if (side) query.set("side", String(side));
    return api.apiURL(`${PREFIX}/preview?${query}`);
  },
  /** Every image of the batch down one route. */
  choose: (node, token, route) => postJson("/choice", { node, token, route }),
  /** One route per batch image (1-based, in batch order). */
  chooseEach: (node, token, routes) => postJson("/choice", { node, token, routes }),
  /** Stop the pause's countdown: it waits for a person from now on. */
  hold: (node, token) => postJson("/hold", { node, token }),
  stop: (node, token) => postJson("/cancel", { node, token }),
  /** Upload a painted mask (PNG: white = masked); index null = every image of the batch. */
  uploadMask(node, token, blob, index = null) {
    return postMask(node, token, (form) => {
      if (index !== null && index !== undefined) form.append("index", String(index));
      form.append("mask", blob, "mask.png");
    });
  },
  clearMask: (node, token) => postMask(node, token, (form) => form.append("clear", "1")),
  /** Take over an orphaned pause (its tab is gone): resolves to the pause with its new token. */
  takeOver(node) {
    const id = clientId();
    if (!id) return Promise.reject(new GateError("this tab's client id is not known yet", 0));
    return postJson("/takeover", { node, client_id: id });
  },
  /**
   * Gates waiting now: this tab's with their tokens, other tabs' without (`owner: "other"`,
   * `orphaned`); null when the tab's id is not known yet.
   */
  async pending() {
    const id = clientId();
    if (!id) return null;
    const data = await call(`/pending?${new URLSearchParams({ client_id: id })}`);
    return Array.isArray(data.pending) ? data.pending : [];
  },
  async listSlots() {
    const data = await call("/bus/list");
    return Array.isArray(data.slots) ? data.slots : [];
  },
  /** The server's own thumbnail URL for a listed slot (it carries the cache key). */
  thumbUrl: (slot) => api.apiURL(slot.thumb_url),
  /** Queue a parked slot's prompt again, its gate reading the slot: resolves to {prompt_id}. */
  resume(slotId) {
    const id = clientId();
    if (!id) return Promise.reject(new GateError("this tab's client id is not known yet", 0));
    return postJson(`/resume/${encodeURIComponent(slotId)}`, { client_id: id });
  },
  /**
   * Where a prompt is now, from ComfyUI's own /queue and /history: "queued", "running",
   * "done", "failed", "stopped" or "unknown".
   */
  async promptState(promptId) {
    // ComfyUI's own JSON may hold a bare NaN too (the is_changed of the prompts it ran).
    const queue = await readJson(await api.fetchApi("/queue", { cache: "no-store" }));
    const has = (list) => (list ?? []).some((item) => item?.[1] === promptId);
    if (has(queue.queue_running)) return "running";
    if (has(queue.queue_pending)) return "queued";
    const history = await readJson(await api.fetchApi(`/history/${encodeURIComponent(promptId)}`, { cache: "no-store" }));
    const status = history?.[promptId]?.status;
    if (!status) return "unknown";
    if (status.status_str === "success") return "done";
    const interrupted = (status.messages ?? []).some(([type]) => type === "execution_interrupted");
    return interrupted ? "stopped" : "failed";
  },
};
