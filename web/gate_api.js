// The pack's HTTP routes as seen from the ComfyUI page, on the shared client (web/http.js)
// bound to api.fetchApi, which adds the page's base path, /api and the user header.
// No side effects: ComfyUI imports every .js under web/ as a module.
import { api } from "../../scripts/api.js";
import { HttpError, PREFIX, httpClient } from "./http.js";

/** ComfyUI's server, its own routes and the pack's, from this page. */
export const comfy = httpClient({ fetch: (path, init) => api.fetchApi(path, init), url: (path) => api.apiURL(path) });

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

const postJson = (path, body) => comfy.postJson(PREFIX + path, body);

/** POST /mask as multipart: the pause's node and token, then what `fill` adds. */
function postMask(node, token, fill) {
  const form = new FormData();
  form.append("node", node);
  form.append("token", token);
  fill(form);
  return comfy.postForm(`${PREFIX}/mask`, form);
}

/** Rejects at once while this tab's client id is not known (see clientId). */
function needClientId() {
  const id = clientId();
  if (!id) throw new HttpError("this tab's client id is not known yet", 0);
  return id;
}

export const gateApi = {
  /** A batch image of a pause as PNG; `side` (64..1024) asks for a smaller one (grid: 160). */
  previewUrl(node, token, index, side = null) {
    const query = new URLSearchParams({ node, token, index: String(index) });
    if (side) query.set("side", String(side));
    return comfy.url(`${PREFIX}/preview?${query}`);
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
  takeOver: async (node) => postJson("/takeover", { node, client_id: needClientId() }),
  /**
   * Gates waiting now: this tab's with their tokens, other tabs' without (`owner: "other"`,
   * `orphaned`); null when the tab's id is not known yet.
   */
  async pending() {
    const id = clientId();
    if (!id) return null;
    const data = await comfy.get(`${PREFIX}/pending?${new URLSearchParams({ client_id: id })}`);
    return Array.isArray(data.pending) ? data.pending : [];
  },
  async listSlots() {
    const data = await comfy.get(`${PREFIX}/bus/list`);
    return Array.isArray(data.slots) ? data.slots : [];
  },
  /** The server's own thumbnail URL for a listed slot (it carries the cache key). */
  thumbUrl: (slot) => comfy.url(slot.thumb_url),
  /** Queue a parked slot's prompt again, its gate reading the slot: resolves to {prompt_id}. */
  resume: async (slotId) => postJson(`/resume/${encodeURIComponent(slotId)}`, { client_id: needClientId() }),
  /**
   * Where a prompt is now, from ComfyUI's own /queue and /history: "queued", "running",
   * "done", "failed", "stopped" or "unknown".
   */
  async promptState(promptId) {
    // ComfyUI's own JSON may hold a bare NaN (the is_changed of the prompts it ran): the
    // client reads it leniently.
    const queue = await comfy.get("/queue");
    const has = (list) => (list ?? []).some((item) => item?.[1] === promptId);
    if (has(queue.queue_running)) return "running";
    if (has(queue.queue_pending)) return "queued";
    const history = await comfy.get(`/history/${encodeURIComponent(promptId)}`);
    const status = history?.[promptId]?.status;
    if (!status) return "unknown";
    if (status.status_str === "success") return "done";
    const interrupted = (status.messages ?? []).some(([type]) => type === "execution_interrupted");
    return interrupted ? "stopped" : "failed";
  },
};
