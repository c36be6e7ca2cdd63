// One Image Gate's masks: the ones it keeps across runs (a MaskKeeper, per image and for every
// image) and what the panel's mask buttons do with them. Edit mask paints over the enlarged
// image, or the first selected one's full preview, with the painter the setting names
// (mask_editor_bridge.js); the new mask is kept and sent to the pause. Clear mask drops them
// here and on the server. At a new pause the kept ones are sent again (POST /mask) before the
// route buttons are enabled. No side effects.
import { comfyGate } from "./comfy_api.js";
import { loadImage } from "./image_loader.js";
import { ALL, MaskKeeper, maskToPng } from "./mask_data.js";
import { paintMask } from "./mask_editor_bridge.js";

export class GateMasks {
  /**
   * @param {object} gate  the GateController: its app, node, panel and view model (`model`),
   *   request(what, fn) (route buttons wait meanwhile), say(text, isError) and render()
   */
  constructor(gate) {
    this.gate = gate;
    this.kept = new MaskKeeper(); // kept across runs
  }

  /** The batch images a mask painted now belongs to: the enlarged one, the selected ones, or
   *  (nothing selected, or a single image) every image. */
  keys() {
    const model = this.gate.model;
    return model.batch > 1 ? model.targets() : [];
  }

  /** The full-size preview to paint over: the enlarged image, or the first one masked. */
  async paintingImage(keys) {
    const { model, panel } = this.gate;
    if (model.view === "single") {
      const image = panel.image;
      return image.complete && image.naturalWidth ? image : null;
    }
    const { node, token } = model.info;
    try {
      return await loadImage(comfyGate.previewUrl(node, token, keys[0] ?? 0));
    } catch {
      return null;
    }
  }

  async edit() {
    const gate = this.gate;
    const model = gate.model;
    if (model.mode !== "paused") return;
    const keys = this.keys();
    const image = await this.paintingImage(keys);
    if (model.mode !== "paused") return;
    if (!image) {
      gate.say("The preview has not loaded yet.", true);
      return;
    }
    const existing = this.kept.maskFor(keys.length ? keys[0] : ALL);
    const which = !keys.length ? (model.batch > 1 ? " · every image" : "")
      : keys.length === 1 ? ` · image ${keys[0] + 1}/${model.batch}` : ` · ${keys.length} images`;
    const title = `Mask · ${gate.node.title}${which}`;
    let mask;
    try {
      mask = await paintMask({ app: gate.app, node: gate.node, image, mask: existing, title });
    } catch (err) { // the MaskEditor failed and is still open
      gate.say(err.message, true);
      return;
    }
    gate.panel.focus(); // keys pick routes again
    if (!mask) return; // cancelled
    this.kept.keep(keys, mask);
    gate.render();
    if (model.mode === "paused") await this.push({ clearFirst: true, what: "Sending the mask…" });
  }

  /** Make the server's masks for this pause equal the kept ones (route buttons wait). */
  async push({ clearFirst, what }) {
    const gate = this.gate;
    const { node, token, batch } = gate.model.info;
    gate.say(what);
    const ok = await gate.request("Sending the mask", async () => {
      if (clearFirst) await comfyGate.clearMask(node, token);
      for (const [index, mask] of this.kept.uploadsFor(batch)) {
        await comfyGate.uploadMask(node, token, await maskToPng(mask), index);
      }
      return true;
    });
    if (ok) gate.say("");
  }

  async clear() {
    const gate = this.gate;
    const model = gate.model;
    this.kept.clear();
    if (model.mode === "paused") {
      const { node, token } = model.info;
      const ok = await gate.request("Clearing the mask", () => comfyGate.clearMask(node, token));
      if (ok) model.info = { ...model.info, painted: [] };
    }
    gate.render();
  }
}
