// Painted masks in the page. A mask is a canvas whose alpha is the mask (opaque = masked),
// the size of the preview it was painted on; the server resizes it to the image. On the way
// to the server and to/from ComfyUI's MaskEditor the convention flips: transparent = masked.
// No side effects.

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
