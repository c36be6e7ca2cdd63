// The pack's one HTTP client: JSON requests to a server's routes, their refusals as errors, and
// URLs for <img src> and links. It runs in two pages: inside ComfyUI, comfy_api.js binds it to
// api.fetchApi (which adds the page's base path, /api and the user header); on the standalone
// slot browser page (`python -m gates serve`), which has no ComfyUI, it sits on window.fetch.
// So it imports nothing from ComfyUI. No side effects.
import { errorText, readJson } from "./format.js";

/** Where the pack's routes live on the server (gates/routes.py PREFIX). */
export const PREFIX = "/datasete_gate";

/** A refused request: `status` is the HTTP status (409: that pause is not this tab's, or over;
 *  0: refused before anything was sent). */
export class HttpError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/**
 * A client on one transport. Paths are rooted at the server, the way the server itself names
 * them ("/datasete_gate/bus/list", ComfyUI's "/queue", a listed slot's `thumb_url`).
 * @param {{fetch: (path: string, init: RequestInit) => Promise<Response>, url: (path: string) => string}} transport
 *   fetch: send a request for a path; url: the path as a URL this page can load.
 */
export function httpClient({ fetch: send, url }) {
  /** The reply's JSON (read leniently: see readJson); a status other than 2xx throws HttpError. */
  async function request(path, init = {}) {
    const response = await send(path, { cache: "no-store", ...init });
    if (!response.ok) throw new HttpError(await errorText(response), response.status);
    return readJson(response);
  }
  /** GET with If-None-Match `etag`: {changed: false, etag} on a 304 (the caller keeps what it
   *  has), else {changed: true, etag, data} with the answer's ETag (null without one). */
  async function getIfChanged(path, etag) {
    const headers = etag ? { "If-None-Match": etag } : {};
    const response = await send(path, { cache: "no-store", headers });
    if (response.status === 304) return { changed: false, etag };
    if (!response.ok) throw new HttpError(await errorText(response), response.status);
    return { changed: true, etag: response.headers.get("ETag"), data: await readJson(response) };
  }
  return {
    url,
    get: (path) => request(path),
    getIfChanged,
    postJson: (path, body) =>
      request(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }),
    postForm: (path, form) => request(path, { method: "POST", body: form }),
    delete: (path) => request(path, { method: "DELETE" }),
  };
}

/** The header and the query parameter that carry `gates serve`'s token (gates/http/app.py). */
export const TOKEN_HEADER = "X-Dataset-Gates-Token";
export const TOKEN_QUERY = "dataset_gates_token";

/**
 * A client on window.fetch for a server whose routes start at `root`: "" under `gates serve`,
 * ComfyUI's "/api" for a page of its own that does not load ComfyUI's scripts. With `token`
 * (`gates serve` beyond loopback), requests send it as a header, and the URLs the browser loads
 * by itself (<img>, download links, which cannot send headers) carry it as a query parameter:
 * both only to this server.
 */
export function fetchClient(root = "", token = null) {
  const withToken = (path) => `${path}${path.includes("?") ? "&" : "?"}${TOKEN_QUERY}=${encodeURIComponent(token)}`;
  const url = (path) => root + (token ? withToken(path) : path);
  const send = (path, init) => fetch(root + path, token ? { ...init, headers: { ...init.headers, [TOKEN_HEADER]: token } } : init);
  return httpClient({ fetch: send, url });
}
