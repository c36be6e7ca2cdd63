// The pack's routes from the ComfyUI page: the shared client (web/http.js) bound to
// api.fetchApi, which adds the page's base path, /api and the user header, this tab's client
// id, and gate_api.js's gate and bus routes on them. With image_gate.js the only module that
// imports ComfyUI's scripts. No side effects: ComfyUI imports every .js under web/ as a module.
import { api } from "../../scripts/api.js";
import { busApi, gateApi } from "./gate_api.js";
import { httpClient } from "./http.js";

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

/** The gate's routes from this tab. */
export const comfyGate = gateApi(comfy, clientId);
/** The bus's routes from this tab (resume queues in this tab). */
export const comfyBus = busApi(comfy, clientId);
