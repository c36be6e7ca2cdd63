// Painted masks in the page. A mask is a canvas whose alpha is the mask (opaque = masked),
// the size of the preview it was painted on; the server resizes it to the image. On the way
// to the server and to/from ComfyUI's MaskEditor the convention flips: transparent = masked.
// MaskKeeper holds a gate's painted masks across runs. No side effects.

export const TINT = "rgba(255, 40, 90, 1)";

export function blankMask(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, width);
  canvas.height = Math.max(1, height);
  // Masks are read back (getImageData); the first getContext fixes this for later calls, and
  // without it Chromium warns on the console after a few readbacks.
  canvas.getContext("2d", { willReadFrequently: true });
  return canvas;
}

/** A copy of `source` (a canvas or image), scaled to width x height (default: its own size). */
export function copyMask(source, width = source.width, height = source.height) {
  const canvas = blankMask(width, height);
  canvas.getContext("2d").drawImage(source, 0, 0, width, height);
  return canvas;
}

/** The mask filled with one colour where painted (for overlays and the brush view). */
export function colourise(mask, colour = TINT) {
  const canvas = copyMask(mask);
  const ctx = canvas.getContext("2d");
  ctx.globalCompositeOperation = "source-in";
  ctx.fillStyle = colour;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  return canvas;
}

export function isEmptyMask(mask) {
  const data = mask.getContext("2d").getImageData(0, 0, mask.width, mask.height).data;
  for (let i = 3; i < data.length; i += 4) if (data[i]) return false;
  return true;
}

/**
 * PNG for POST /mask. Browsers always write an alpha channel, so this uses ComfyUI's alpha
 * convention (the server's too): transparent = masked, opaque = not masked.
 */
export function maskToPng(mask) {
  const black = blankMask(mask.width, mask.height);
  const ctx = black.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, black.width, black.height);
  return canvasToBlob(imageWithInverseAlpha(black, mask));
}

/** A data URL of the tinted mask, drawn over the preview with the same object-fit. */
export function overlayUrl(mask) {
  return colourise(mask).toDataURL("image/png");
}

/**
 * A mask from an image whose alpha is the inverse of the mask (MaskEditor's output and
 * ComfyUI's convention: painted = transparent).
 */
export function maskFromInverseAlpha(image, width, height) {
  const canvas = copyMask(image, width, height);
  const ctx = canvas.getContext("2d");
  const pixels = ctx.getImageData(0, 0, width, height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    data[i] = data[i + 1] = data[i + 2] = 255;
    data[i + 3] = 255 - data[i + 3];
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}

/** `image` (an <img> or canvas) made transparent where `mask` is painted. */
export function imageWithInverseAlpha(image, mask) {
  const canvas = copyMask(image, image.naturalWidth || image.width, image.naturalHeight || image.height);
  const ctx = canvas.getContext("2d");
  if (mask) {
    ctx.globalCompositeOperation = "destination-out";
    ctx.drawImage(mask, 0, 0, canvas.width, canvas.height);
  }
  return canvas;
}

export function canvasToBlob(canvas) {
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("could not encode the image"))), "image/png"));
}

/** The key of a mask for every image of the batch (other keys are batch indexes). */
export const ALL = -1;

/**
 * The masks painted on one gate node, kept in the page for later runs until cleared: one per
 * batch image and one for every image (ALL), each with its tinted overlay. A mask of an image's
 * own wins over the one for every image.
 */
export class MaskKeeper {
  constructor() {
    this.masks = new Map(); // key -> mask canvas
    this.overlays = new Map(); // same keys -> tinted data URL
  }

  get size() {
    return this.masks.size;
  }

  /** The mask to start painting from for `key` (a batch index, or ALL): its own, else every image's. */
  maskFor(key) {
    return this.masks.get(key) ?? this.masks.get(ALL) ?? null;
  }

  /** The tint shown over batch image `key` (ALL: the one for every image only). */
  overlayFor(key) {
    return this.overlays.get(key) ?? this.overlays.get(ALL) ?? null;
  }

  /** Keep `mask` for batch images `keys` (empty: every image); an empty mask drops theirs. */
  keep(keys, mask) {
    const empty = isEmptyMask(mask);
    const tint = empty ? null : overlayUrl(mask);
    for (const key of keys.length ? keys : [ALL]) {
      if (empty) {
        this.masks.delete(key);
        this.overlays.delete(key);
      } else {
        this.masks.set(key, mask);
        this.overlays.set(key, tint);
      }
    }
  }

  clear() {
    this.masks.clear();
    this.overlays.clear();
  }

  /** What a pause of `batch` images gets sent: [index, or null for every image, mask], in the
   *  order painted; an image's own mask beyond the batch stays kept but is not sent. */
  uploadsFor(batch) {
    return [...this.masks].filter(([key]) => key === ALL || key < batch)
      .map(([key, mask]) => [key === ALL ? null : key, mask]);
  }

  /** Which images have a kept mask, for the node's note ("" when none). */
  describe() {
    const keys = [...this.masks.keys()];
    if (!keys.length) return "";
    const own = keys.filter((k) => k !== ALL).length;
    const where = keys.includes(ALL) ? `every image${own ? ` (${own} with their own)` : ""}`
      : `${own} image${own > 1 ? "s" : ""}`;
    return `Mask painted on ${where}; kept for the next run until cleared.`;
  }
}
