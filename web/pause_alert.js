// The signal a paused gate gives its tab: a flashing title and/or one short beep, so a person
// working in another tab or window sees that a gate waits for them. No imports and no side
// effects at import: it touches the page (document.title, an AudioContext) only once told
// that a pause is open.

export const PAUSE_ALERT_SETTING = "DatasetGates.PauseAlert";
export const ALERT_NONE = "none";
export const ALERT_SOUND = "sound";
export const ALERT_TITLE = "title flash";
export const ALERT_BOTH = "both";
const MODES = [ALERT_NONE, ALERT_SOUND, ALERT_TITLE, ALERT_BOTH];

/** The setting as an extension registers it (`settings` of app.registerExtension). */
export const PAUSE_ALERT_SETTING_DEF = {
  id: PAUSE_ALERT_SETTING,
  category: ["Dataset Gates", "Pause", "Alert"],
  name: "Image Gate: on pause",
  tooltip: "How a tab says that one of its gates waits for you: the tab's title flashes, one beep, both, or nothing",
  type: "combo",
  options: MODES,
  defaultValue: ALERT_TITLE,
};

/** The two titles the flash alternates between. Both start with the pause sign, so the tab
 *  strip shows it at every moment: a hidden tab's timers may fire only once a minute. */
export const TITLE_WAITING = "⏸ Gate waiting · ";
export const TITLE_MARK = "⏸ ";
export const FLASH_MS = 1000;
const BEEP_HZ = 880;
const BEEP_S = 0.3;

/** A setting value as one of MODES; anything else (unset, a removed option) is the default. */
export function alertMode(value) {
  return MODES.includes(value) ? value : ALERT_TITLE;
}

/**
 * One alert for all of this tab's open pauses: it starts when the first opens (one beep, the
 * title starts flashing) and ends when the last is over (the title is put back). The page may
 * set its own title meanwhile (ComfyUI shows progress there): the flash follows it, and the
 * title is put back to the page's latest one, never to an older one.
 */
export class PauseAlert {
  /**
   * @param {object} options
   * @param {() => unknown} options.mode  the setting's current value, read at every flash, so
   *   a change applies to an alert already running
   * @param {(fn: () => void, ms: number) => unknown} [options.every]  setInterval, or a
   *   stand-in a test steps by hand
   * @param {(handle: unknown) => void} [options.cancel]  clearInterval, or its stand-in
   */
  constructor({ mode, every = (fn, ms) => setInterval(fn, ms), cancel = (handle) => clearInterval(handle) }) {
    this.mode = () => alertMode(mode());
    this.every = every;
    this.cancel = cancel;
    this.timer = null;
    this.active = false;
    this.base = ""; // the page's own title
    this.written = null; // the title this alert set last, while it shows one
    this.waitingShown = false;
    this.sound = null;
  }

  /** Whether this tab has an open pause. Several at once, or told again: still one alert. */
  update(open) {
    if (open && !this.active) this.start();
    else if (!open && this.active) this.stop();
  }

  start() {
    this.active = true;
    const mode = this.mode();
    if (mode === ALERT_SOUND || mode === ALERT_BOTH) this.beep();
    this.timer = this.every(() => this.flash(), FLASH_MS);
    this.flash();
  }

  stop() {
    this.active = false;
    this.cancel(this.timer);
    this.timer = null;
    this.restore();
  }

  /** One step of the flash; with the setting changed to no flash, the title goes back. */
  flash() {
    const current = document.title;
    if (current !== this.written) this.base = current; // the page set a title of its own
    const mode = this.mode();
    if (mode !== ALERT_TITLE && mode !== ALERT_BOTH) {
      this.restore();
      return;
    }
    this.waitingShown = !this.waitingShown;
    this.written = (this.waitingShown ? TITLE_WAITING : TITLE_MARK) + this.base;
    document.title = this.written;
  }

  /** The page's title back, unless the page has set a newer one since the last flash. A
   *  flash that starts again starts with the waiting text. */
  restore() {
    if (this.written !== null && document.title === this.written) document.title = this.base;
    this.written = null;
    this.waitingShown = false;
  }

  /** A short generated tone. Browsers refuse sound before the person has interacted with the
   *  page (a reloaded tab has not): then it stays silent rather than warn in the console. */
  beep() {
    const Context = globalThis.AudioContext ?? globalThis.webkitAudioContext;
    if (!Context || globalThis.navigator?.userActivation?.hasBeenActive === false) return;
    try {
      this.sound?.close().catch(() => {});
      const context = new Context();
      this.sound = context;
      if (context.state === "suspended") context.resume().catch(() => {});
      const tone = context.createOscillator();
      const volume = context.createGain();
      const now = context.currentTime;
      tone.frequency.value = BEEP_HZ;
      volume.gain.setValueAtTime(0.0001, now);
      volume.gain.exponentialRampToValueAtTime(0.2, now + 0.02);
      volume.gain.exponentialRampToValueAtTime(0.0001, now + BEEP_S);
      tone.connect(volume).connect(context.destination);
      tone.onended = () => {
        if (this.sound === context) this.sound = null;
        context.close().catch(() => {});
      };
      tone.start(now);
      tone.stop(now + BEEP_S);
    } catch {
      // No audio output here: the alert is the title flash alone (when chosen).
    }
  }
}
