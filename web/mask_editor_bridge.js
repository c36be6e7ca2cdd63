// Best-effort use of ComfyUI's own MaskEditor (the Vue editor of frontend 1.2x and later).
//
// The editor only edits images the server can serve from /view and writes its result to
// input/clipspace, so the preview is first uploaded there (with any kept mask as inverse
// alpha). The editor is opened through its public command on the selected node, with
// node.imgs / node.images pointing at that upload. It is told apart from other dialogs by the
// key the frontend's dialog store gives it, which both the PrimeVue (1.3x) and the Reka (1.4x+)
// dialogs expose as aria-labelledby; no CSS class of either is relied on. A save shows up as a
// new image on the node (node.images, and in 1.4x+ the frontend's node-output store); a cancel
// leaves the upload there. Either way the node is put back exactly as it was: its images, its
// node-output store entry (app.nodeOutputs, the store's public view), its widgets and its size;
// meanwhile the node draws no image previews of its own. The editor also rewrites a widget
// named `image`; the Image Gate has none. Any failure rejects. paintMask() is the painter
// choice: the editor when the user's setting asks for it, falling back to the built-in brush.
// No side effects until editWithMaskEditor() or paintMask().
import { comfy } from "./comfy_api.js";
import { loadImage } from "./image_loader.js";
import { openBrush } from "./mask_brush.js";
import { canvasToBlob, imageWithInverseAlpha, maskFromInverseAlpha } from "./mask_data.js";

export const PAINTER_SETTING = "DatasetGates.MaskPainter";
export const PAINTER_EDITOR = "ComfyUI MaskEditor";
export const PAINTER_BRUSH = "Built-in brush";

const COMMAND = "Comfy.MaskEditor.OpenMaskEditor";
/** The frontend's dialog-store key for the MaskEditor (its own isOpened() asks the store for it). */
export const EDITOR_DIALOG_KEY = "global-mask-editor";
const EDITOR_DIALOG = `[role="dialog"][aria-labelledby="${EDITOR_DIALOG_KEY}"]`;
/** 1.3x only: off = the legacy clipspace editor, which this bridge does not drive. */
const LEGACY_EDITOR_SETTING = "Comfy.MaskEditor.UseNewEditor";
const OPEN_TIMEOUT_MS = 5000;
/** Node fields the editor (or the frontend's preview code while node.imgs is set) may change. */
const NODE_FIELDS = ["imgs", "images", "imageIndex", "animatedImages", "preview", "previewMediaType"];

export function maskEditorAvailable(app) {
  const manager = app.extensionManager;
  const commands = manager?.command?.commands ?? [];
  if (!commands.some((c) => c.id === COMMAND)) return false;
  // Only a frontend that still defines the setting has the legacy editor; a value saved by an
  // older frontend must not turn the editor off in one that no longer has the setting.
  const defined = Boolean(manager.setting?.settings?.[LEGACY_EDITOR_SETTING]);
  return !(defined && manager.setting.get(LEGACY_EDITOR_SETTING) === false);
}

/** Whether the MaskEditor dialog is on screen (a closing Reka dialog says data-state="closed"). */
export function maskEditorOpen() {
  return [...document.querySelectorAll(EDITOR_DIALOG)].some((dialog) => dialog.dataset.state !== "closed");
}

/** Resolve with check() once it holds (watching DOM changes), or with its last value on timeout. */
function whenDom(check, timeoutMs = null) {
  return new Promise((resolve) => {
    if (check()) {
      resolve(true);
      return;
    }
    let timer = null;
    const observer = new MutationObserver(() => {
      if (check()) done(true);
    });
    function done(value) {
      observer.disconnect();
      clearTimeout(timer);
      resolve(value);
    }
    observer.observe(document.body, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["data-state", "aria-labelledby", "role"],
    });
    if (timeoutMs !== null) timer = setTimeout(() => done(check()), timeoutMs);
  });
}

async function uploadToClipspace(canvas) {
  const form = new FormData();
  form.append("image", await canvasToBlob(canvas), `dataset-gates-${Date.now()}.png`);
  form.append("type", "input");
  form.append("subfolder", "clipspace");
  form.append("overwrite", "true");
  let data;
  try {
    data = await comfy.postForm("/upload/image", form);
  } catch (err) {
    throw new Error(`upload to clipspace failed (${err.message})`);
  }
  return { filename: data.name, subfolder: data.subfolder ?? "clipspace", type: data.type ?? "input" };
}

function viewUrl(ref) {
  const query = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder ?? "", type: ref.type ?? "input" });
  return comfy.url(`/view?${query}&r=${Date.now()}`);
}

/** The node's key in app.nodeOutputs (the frontend's node-output store), as the frontend makes it. */
function outputsKey(app, node) {
  const locate = app.extensionManager?.workflow?.nodeToNodeLocatorId;
  if (typeof locate === "function") {
    try {
      return String(locate(node));
    } catch { /* a node outside any workflow */ }
  }
  return String(node.id);
}

const plain = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

/** What restoreNode() puts back. */
export function snapshotNode(app, node) {
  const key = outputsKey(app, node);
  return {
    fields: NODE_FIELDS.map((name) => ({ name, own: Object.hasOwn(node, name), value: node[name] })),
    widgets: [...(node.widgets ?? [])],
    size: node.size ? [node.size[0], node.size[1]] : null,
    outputsKey: key,
    outputs: JSON.stringify(plain(app.nodeOutputs?.[key]) ?? null),
  };
}

/** Put the node back as snapshotNode() saw it. */
export function restoreNode(app, node, before) {
  const store = app.nodeOutputs;
  // The store first: while it holds an image for the node, the canvas puts it back on every draw.
  if (store && JSON.stringify(plain(store[before.outputsKey]) ?? null) !== before.outputs) {
    const old = JSON.parse(before.outputs);
    if (old === null) delete store[before.outputsKey];
    else store[before.outputsKey] = old;
  }
  for (const { name, own, value } of before.fields) {
    if (!own && Object.hasOwn(node, name)) delete node[name];
    if (node[name] !== value) node[name] = value;
  }
  for (const widget of [...(node.widgets ?? [])]) {
    if (before.widgets.includes(widget)) continue;
    if (typeof node.removeWidget === "function") node.removeWidget(widget);
    else {
      widget.onRemove?.();
      node.widgets.splice(node.widgets.indexOf(widget), 1);
    }
  }
  if (before.size && (node.size[0] !== before.size[0] || node.size[1] !== before.size[1])) node.setSize(before.size);
  app.canvas?.setDirty?.(true, true);
}

/** The image the editor saved for the node, or null when it kept ours (cancelled). */
function savedImage(app, node, ours) {
  const stored = app.nodeOutputs?.[outputsKey(app, node)]?.images?.[0];
  for (const ref of [node.images?.[0], stored]) {
    if (ref?.filename && ref.filename !== ours.filename) return plain(ref);
  }
  return null;
}

/**
 * Edit a mask over `image` (the loaded preview) in ComfyUI's MaskEditor, on `node`.
 * Resolves with the new mask canvas (preview size), or null when the user cancelled.
 * Rejects when the editor is unavailable or did not open.
 */
export async function editWithMaskEditor({ app, node, image, mask = null }) {
  if (!maskEditorAvailable(app)) throw new Error("ComfyUI's MaskEditor is not available");
  if (maskEditorOpen()) throw new Error("the MaskEditor is already open");
  const width = image.naturalWidth;
  const height = image.naturalHeight;
  const ref = await uploadToClipspace(imageWithInverseAlpha(image, mask));
  const picture = await loadImage(viewUrl(ref));
  const before = snapshotNode(app, node);
  // While the editor has the node, the canvas must not turn node.imgs or the saved image into
  // its own preview of the node (it would do so on the next draw, loading asynchronously, and
  // land after the node is restored): the frontend does that in onDrawBackground.
  const ownDraw = Object.hasOwn(node, "onDrawBackground") ? { value: node.onDrawBackground } : null;
  node.onDrawBackground = function () {};
  try {
    node.imgs = [picture];
    node.images = [ref];
    node.imageIndex = 0;
    app.canvas.selectNode(node, false);
    await app.extensionManager.command.execute(COMMAND);
    if (!(await whenDom(maskEditorOpen, OPEN_TIMEOUT_MS))) throw new Error("the MaskEditor did not open");
    await whenDom(() => !maskEditorOpen());
    const result = savedImage(app, node, ref);
    if (!result) return null; // cancelled
    return maskFromInverseAlpha(await loadImage(viewUrl(result)), width, height);
  } finally {
    restoreNode(app, node, before);
    if (ownDraw) node.onDrawBackground = ownDraw.value;
    else delete node.onDrawBackground;
  }
}

/**
 * Paint a mask over `image` (the loaded preview) with the painter the setting names: ComfyUI's
 * MaskEditor when it is chosen and available, else (or when it fails) the built-in brush.
 * Resolves with the new mask canvas, or null when the user cancelled. Rejects, without opening
 * the brush, when the MaskEditor failed but is still open: never paint over it.
 * @param {{app, node, image: HTMLImageElement, mask?: HTMLCanvasElement|null, title: string}} options
 */
export async function paintMask({ app, node, image, mask = null, title }) {
  const preferEditor = app.extensionManager?.setting?.get?.(PAINTER_SETTING) === PAINTER_EDITOR;
  if (!preferEditor || !maskEditorAvailable(app)) return openBrush({ image, mask, title });
  try {
    return await editWithMaskEditor({ app, node, image, mask });
  } catch (err) {
    if (maskEditorOpen()) throw new Error(`ComfyUI's MaskEditor is still open: ${err.message}`);
    console.warn("[Dataset Gates] MaskEditor failed, using the built-in brush:", err);
    return openBrush({ image, mask, title });
  }
}
