// Loading images into <img> elements: one image as a promise (loadImage), and a grid's
// thumbnails a few at a time with retries (ThumbLoader). No imports and no side effects.

/** Thumbnails asked for at once: more than the browser's 6 connections per host, so a lane never
 *  waits for the page to handle a load event; the server renders them two at a time. */
export const THUMB_LOADS = 12;
/** Tries per thumbnail: a failed one (a 503 past the server's render queue) is asked again. */
export const THUMB_RETRIES = 3;

/** Resolves with the loaded <img>; rejects when it does not load. */
export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${src}`));
    img.src = src;
  });
}

/**
 * Loads thumbnails a few at a time (the server renders on one or two threads and answers 503 past a
 * small queue) and tries a failed one again. Reports each batch of cells fully loaded once.
 */
export class ThumbLoader {
  constructor(onAllLoaded) {
    this.onAllLoaded = onAllLoaded;
    this.reset();
  }

  reset() {
    this.queue = [];
    this.running = 0;
    this.left = 0;
    this.generation = (this.generation ?? 0) + 1;
  }

  /** Load every [img, url] of a new grid (forgets the previous grid's loads). */
  loadAll(items) {
    this.reset();
    this.queue = items.map(([img, url]) => ({ img, url, tries: 0 }));
    this.left = items.length;
    this.pump();
  }

  pump() {
    while (this.running < THUMB_LOADS && this.queue.length) this.start(this.queue.shift());
  }

  start(item) {
    const generation = this.generation;
    this.running++;
    item.tries++;
    const done = (ok) => {
      item.img.onload = item.img.onerror = null;
      if (generation !== this.generation) return;
      this.running--;
      if (ok) {
        item.img.classList.remove("dg-cell-failed");
        if (--this.left === 0) this.onAllLoaded();
      } else if (item.tries < THUMB_RETRIES) {
        setTimeout(() => {
          if (generation !== this.generation) return;
          this.queue.push(item);
          this.pump();
        }, 200 * item.tries);
      } else {
        item.img.classList.add("dg-cell-failed");
      }
      this.pump();
    };
    item.img.onload = () => done(true);
    item.img.onerror = () => done(false);
    item.img.src = item.tries > 1 ? `${item.url}&retry=${item.tries}` : item.url;
  }
}
