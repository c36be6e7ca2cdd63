// The pack's HTTP routes as calls on a client of web/http.js: the gate's (a pause's preview,
// choice, hold, mask, take-over, pending) and the slot browser's (the bus's slots and their
// files, pin, rename, delete, the storage policy, resuming a parked slot; the datasets'
// reports). Imports nothing from ComfyUI, so
// it runs in both pages: inside ComfyUI comfy_api.js puts both on api.fetchApi; the standalone
// slot browser page (`python -m gates serve`) puts the bus's on window.fetch. No side effects.
import { HttpError, PREFIX } from "./http.js";

/** One pause across GET /pending answers, with or without its token (a take-over keeps `created`). */
export const pauseKey = (data) => `${data.node}@${data.created}`;

/** A slot id or version ref (id@-N) as one path segment. */
const slotPath = (id) => encodeURIComponent(id);

/** An answer's body, with the captions when there are any (a gate without captions refuses them). */
const withCaptions = (body, captions) => (captions ? { ...body, captions } : body);

/** The tab's client id from `clientId()`; rejects at once while it is not known. */
function needClientId(clientId) {
  const id = clientId();
  if (!id) throw new HttpError("this tab's client id is not known yet", 0);
  return id;
}

/**
 * The gate's routes on `client`.
 * @param {object} client  an http.js client
 * @param {() => string|null} clientId  this tab's websocket client id (null: not known yet);
 *   take-over and pending need it
 */
export function gateApi(client, clientId = () => null) {
  const postJson = (path, body) => client.postJson(PREFIX + path, body);
  /** POST /mask as multipart: the pause's node and token first (the server checks them before
   *  it reads the mask, and refuses a mask that comes before them), then what `fill` adds. */
  const postMask = (node, token, fill) => {
    const form = new FormData();
    form.append("node", node);
    form.append("token", token);
    fill(form);
    return client.postForm(`${PREFIX}/mask`, form);
  };
  return {
    /** A batch image of a pause as PNG; `side` (64..1024) asks for a smaller one (grid: 160). */
    previewUrl(node, token, index, side = null) {
      const query = new URLSearchParams({ node, token, index: String(index) });
      if (side) query.set("side", String(side));
      return client.url(`${PREFIX}/preview?${query}`);
    },
    /** Every image of the batch down one route; `captions` (one per image), when the pause
     *  has captions, as the person left them. */
    choose: (node, token, route, captions = null) => postJson("/choice", withCaptions({ node, token, route }, captions)),
    /** One route per batch image (1-based, in batch order); `captions` as for choose. */
    chooseEach: (node, token, routes, captions = null) =>
      postJson("/choice", withCaptions({ node, token, routes }, captions)),
    /** A Text Gate's answer: the text to pass on. */
    passText: (node, token, text) => postJson("/choice", { node, token, text }),
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
    takeOver: async (node) => postJson("/takeover", { node, client_id: needClientId(clientId) }),
    /**
     * Gates waiting now: this tab's with their tokens, other tabs' without (`owner: "other"`,
     * `orphaned`); null when the tab's id is not known yet.
     */
    async pending() {
      const id = clientId();
      if (!id) return null;
      const data = await client.get(`${PREFIX}/pending?${new URLSearchParams({ client_id: id })}`);
      return Array.isArray(data.pending) ? data.pending : [];
    },
    /**
     * Where a prompt is now, from ComfyUI's own /queue and /history: "queued", "running",
     * "done", "failed", "stopped" or "unknown".
     */
    async promptState(promptId) {
      // ComfyUI's own JSON may hold a bare NaN (the is_changed of the prompts it ran): the
      // client reads it leniently.
      const queue = await client.get("/queue");
      const has = (list) => (list ?? []).some((item) => item?.[1] === promptId);
      if (has(queue.queue_running)) return "running";
      if (has(queue.queue_pending)) return "queued";
      const history = await client.get(`/history/${encodeURIComponent(promptId)}`);
      const status = history?.[promptId]?.status;
      if (!status) return "unknown";
      if (status.status_str === "success") return "done";
      const interrupted = (status.messages ?? []).some(([type]) => type === "execution_interrupted");
      return interrupted ? "stopped" : "failed";
    },
  };
}

/**
 * The bus's routes on `client`: every request of the slot browser and the slot picker (the
 * /bus routes, and the /dataset reports the browser's Datasets panel shows). URLs are the
 * client's, for <img src> and links.
 * @param {object} client  an http.js client
 * @param {() => string|null} clientId  this tab's websocket client id; resume needs it
 */
export function busApi(client, clientId = () => null) {
  const bus = (path) => `${PREFIX}/bus${path}`;
  return {
    /** The bus folder's name and its slots (the rows of GET /bus/list). */
    async list() {
      const data = await client.get(bus("/list"));
      return { bus: data.bus || "", slots: Array.isArray(data.slots) ? data.slots : [] };
    },
    /**
     * The listing again only if it changed since the one tagged `etag` (GET /bus/list with
     * If-None-Match): null while it holds (a 304), else {bus, slots, etag} with the new tag.
     */
    async listIfChanged(etag = null) {
      const reply = await client.getIfChanged(bus("/list"), etag);
      if (!reply.changed) return null;
      const data = reply.data ?? {};
      return { bus: data.bus || "", slots: Array.isArray(data.slots) ? data.slots : [], etag: reply.etag };
    },
    /** One slot or version (id@-N), as a row of the list. */
    info: (ref) => client.get(bus(`/info/${slotPath(ref)}`)),
    /** A slot's kept versions, newest first. */
    async history(id) {
      const data = await client.get(bus(`/history/${slotPath(id)}`));
      return Array.isArray(data.versions) ? data.versions : [];
    },
    /** The server's own thumbnail URL for a listed slot or version (it carries the cache key). */
    thumbUrl: (slot) => client.url(slot.thumb_url),
    /** One batch image of a slot or version; the checksum names the content, so a republished
     *  slot's image is a new URL, never a cached one. */
    imageUrl: (ref, index, checksum) =>
      client.url(bus(`/image/${slotPath(ref)}/${index}?${new URLSearchParams({ v: checksum ?? "" })}`)),
    /** The mask of one batch image (grey, white = masked), keyed by checksum as imageUrl is. */
    maskUrl: (ref, index, checksum) =>
      client.url(bus(`/mask/${slotPath(ref)}/${index}?${new URLSearchParams({ v: checksum ?? "" })}`)),
    /** The exact slot file. */
    tensorsUrl: (ref) => client.url(bus(`/tensors/${slotPath(ref)}`)),
    /** Check the slot file's checksum (the whole file is read): resolves when it holds, rejects
     *  with HttpError 422 and the failure when it is damaged. */
    verify: (ref) => client.get(bus(`/verify/${slotPath(ref)}`)),
    /** Delete a slot for good. */
    delete: (id) => client.delete(bus(`/${slotPath(id)}`)),
    /** Resolves to the slot under its new id. */
    rename: (id, to, overwrite) => client.postJson(bus(`/${slotPath(id)}/rename`), { to, overwrite }),
    /** Resolves to the slot; a pinned one is never removed by the bus quota. */
    pin: (id, pinned) => client.postJson(bus(`/${slotPath(id)}/pin`), { pinned }),
    /** The storage policy: {keep, quota_bytes, ...}. */
    policy: () => client.get(bus("/policy")),
    /** Change the policy ({keep}, {quota_bytes} or both): resolves to the new one. */
    setPolicy: (changes) => client.postJson(bus("/policy"), changes),
    /** What resuming a parked slot would queue: {slot, count, nodes: [{class_type, count}],
     *  routes, labels, batch, worker} (the gate's route count and labels, from the sealed
     *  prompt); an HttpError 403 (with the server's reason) for a run this ComfyUI did not park. */
    resumePlan: (id) => client.get(`${PREFIX}/resume/${slotPath(id)}`),
    /** The other workers of this bus a parked run may be resumed on (GET /workers: the server's
     *  DATASET_GATES_WORKERS), as URLs. */
    async workers() {
      const data = await client.get(`${PREFIX}/workers`);
      return Array.isArray(data.workers) ? data.workers.filter((w) => typeof w === "string" && w) : [];
    },
    /**
     * Queue a parked slot's prompt again: resolves to {prompt_id}. On this server its gate reads
     * the slot and pauses in this tab (the tab's client id is sent); with `worker` (one of
     * workers()) the server forwards it to that worker, which queues it (its pause goes to no
     * tab there: any tab of that ComfyUI can take it over). With `routes` (one 1-based route per
     * batch image) the gate takes them as its answer and the run goes on without pausing;
     * `created` names the version they were decided on (a newer one is refused: 409).
     */
    resume: async (id, { routes = null, worker = null, created = null } = {}) => {
      const body = worker ? { worker } : { client_id: needClientId(clientId) };
      if (routes) Object.assign(body, { routes, created }); // `created`: the version decided on
      return client.postJson(`${PREFIX}/resume/${slotPath(id)}`, body);
    },
    /** The reports of the dataset folders this server loaded pages from, newest first (a gone
     *  one is {folder, depth, error}). */
    async datasetRecent() {
      const data = await client.get(`${PREFIX}/dataset/recent`);
      return Array.isArray(data.datasets) ? data.datasets : [];
    },
    /** The report of any dataset folder the server may read, listed to `depth` (0: the folder's
     *  own files); an HttpError 400 / 403 with the server's reason otherwise. */
    datasetReport: (folder, depth = 0) =>
      client.get(`${PREFIX}/dataset/report?${new URLSearchParams({ folder: String(folder), depth: String(depth) })}`),
  };
}
