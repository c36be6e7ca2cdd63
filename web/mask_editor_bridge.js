// Best-effort use of ComfyUI's own MaskEditor (frontend 1.2x-1.3x, "new editor").
//
// The editor only edits images the server can serve from /view and writes its result to
// input/clipspace, so the preview is first uploaded there (with any kept mask as inverse
// alpha). The editor is opened through its public command on the selected node, with
// node.imgs / node.images pointing at that upload; those are restored afterwards. The editor
// also rewrites a widget named `image`; the Image Gate has none. Any failure rejects, and the
// caller falls back to the built-in brush. While it runs, node.imgs makes the frontend add
// its canvas image preview widget to the node; that is removed again afterwards.
// No side effects until editWithMaskEditor().
import { api } from "../../scripts/api.js";
import { canvasToBlob, imageWithInverseAlpha, maskFromInverseAlpha } from "./mask_data.js";

const COMMAND = "Comfy.MaskEditor.OpenMaskEditor";
const DIALOG = ".mask-editor-dialog";
// While node.imgs is set the frontend adds this canvas preview widget; it must go with them.
const PREVIEW_WIDGET = "$$canvas-image-preview";

export function maskEditorAvailable(app) {
  const manager = app.extensionManager;
  const commands = manager?.command?.commands ?? [];
  return commands.some((c) => c.id === COMMAND) && manager?.setting?.get?.("Comfy.MaskEditor.UseNewEditor") !== false;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check, timeoutMs, stepMs = 100) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(stepMs);
  }
  return check();
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${src}`));
    img.src = src;
  });
}

async function uploadToClipspace(canvas) {
  const form = new FormData();
  form.append("image", await canvasToBlob(canvas), `dataset-gates-${Date.now()}.png`);
  form.append("type", "input");
  form.append("subfolder", "clipspace");
  form.append("overwrite", "true");
  const response = await api.fetchApi("/upload/image", { method: "POST", body: form });
  if (!response.ok) throw new Error(`upload to clipspace failed (${response.status})`);
  const data = await response.json();
  return { filename: data.name, subfolder: data.subfolder ?? "clipspace", type: data.type ?? "input" };
}

function viewUrl(ref) {
  const query = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder ?? "", type: ref.type ?? "input" });
  return api.apiURL(`/view?${query}&r=${Date.now()}`);
}

/**
 * Edit a mask over `image` (the loaded preview) in ComfyUI's MaskEditor, on `node`.
 * Resolves with the new mask canvas (preview size), or null when the user cancelled.
 * Rejects when the editor is unavailable or did not open.
 */
export async function editWithMaskEditor({ app, node, image, mask = null }) {
  if (!maskEditorAvailable(app)) throw new Error("ComfyUI's MaskEditor is not available");
  const width = image.naturalWidth;
  const height = image.naturalHeight;
  const ref = await uploadToClipspace(imageWithInverseAlpha(image, mask));
  const saved = { imgs: node.imgs, images: node.images, imageIndex: node.imageIndex };
  try {
    node.imgs = [await loadImage(viewUrl(ref))];
    node.images = [ref];
    node.imageIndex = 0;
    app.canvas.selectNode(node, false);
    await app.extensionManager.command.execute(COMMAND);
    if (!(await waitFor(() => document.querySelector(DIALOG), 5000))) {
      throw new Error("the MaskEditor did not open");
    }
    await waitFor(() => !document.querySelector(DIALOG), 24 * 3600 * 1000, 200);
    const result = node.images?.[0];
    if (!result?.filename || result.filename === ref.filename) return null; // cancelled
    return maskFromInverseAlpha(await loadImage(viewUrl(result)), width, height);
  } finally {
    node.imgs = saved.imgs;
    node.images = saved.images;
    node.imageIndex = saved.imageIndex;
    const at = node.widgets?.findIndex((w) => w.name === PREVIEW_WIDGET) ?? -1;
    if (at >= 0 && !saved.imgs?.length) {
      node.widgets[at].onRemove?.();
      node.widgets.splice(at, 1);
    }
    app.canvas.setDirty(true, true);
  }
}
