// Small formatting and DOM helpers shared by the node UI and the slot browser.
// No imports and no side effects: ComfyUI imports every .js under web/ as a module.

/** Bytes as a short human string: 512 B, 1.5 KiB, 12.0 MiB. */
export function humanBytes(n) {
  let size = Number(n) || 0;
  for (const unit of ["B", "KiB", "MiB", "GiB"]) {
    if (size < 1024 || unit === "GiB") return unit === "B" ? `${size} B` : `${size.toFixed(1)} ${unit}`;
    size /= 1024;
  }
  return `${n} B`;
}

/** How long ago a unix time (seconds) was: "just now", "5 min ago", "3 h ago", "2 d ago". */
export function age(created, now = Date.now() / 1000) {
  if (!created) return "-";
  const s = Math.max(0, now - created);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A unix time (seconds) as local "YYYY-MM-DD HH:MM:SS". */
export function when(created) {
  if (!created) return "-";
  const d = new Date(created * 1000);
  const p = (v) => String(v).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A slot's image shape [B,H,W,C] as "3×512×768×3" (the tensor's own order). */
export function shapeText(shape) {
  return Array.isArray(shape) && shape.length ? shape.join("×") : "-";
}

/** The picture size of a shape [B,H,W,C] as "W×H" pixels. */
export function sizeText(shape) {
  return Array.isArray(shape) && shape.length === 4 ? `${shape[2]}×${shape[1]}` : "-";
}

/**
 * Create an element: el("div.dg-a.dg-b", {title: "x", onclick: f}, child, "text", ...);
 * the props object may be left out.
 * Keys starting with "on" become listeners, `dataset` and `style` objects are merged,
 * anything else is set as a property (falling back to an attribute).
 */
export function el(spec, props = {}, ...children) {
  if (props instanceof Node || typeof props !== "object" || Array.isArray(props)) {
    children.unshift(props); // el("div", child, ...) without props
    props = {};
  }
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset" || key === "style") Object.assign(node[key], value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/**
 * A response body as JSON, also when the server is Python's json module writing a float NaN or
 * infinity (a slot's meta can hold one: ComfyUI puts NaN in the prompts it runs): those
 * tokens, outside strings, read as null. Strict JSON is parsed as it is.
 */
export async function readJson(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch (err) {
    const lenient = text.replace(/"(?:[^"\\]|\\.)*"|-?\bInfinity\b|\bNaN\b/g, (m) => (m[0] === '"' ? m : "null"));
    if (lenient === text) throw err;
    return JSON.parse(lenient);
  }
}

/** The server's error text from a failed response ({error} JSON), else the status line. */
export async function errorText(response) {
  try {
    const body = await response.clone().json();
    if (body && typeof body.error === "string") return body.error;
  } catch { /* not JSON */ }
  return `${response.status} ${response.statusText || "request failed"}`.trim();
}

/** Add a stylesheet next to a module once (by key); a no-op when the page already links it. */
export function ensureStylesheet(key, href) {
  if (document.querySelector(`link[data-dg-css="${key}"]`)) return;
  document.head.append(el("link", { rel: "stylesheet", href: String(href), dataset: { dgCss: key } }));
}
