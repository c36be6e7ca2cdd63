// What every gate node's controller does with a pause, whatever the pause shows (a batch of
// images: gate_node.js; a text: text_gate_node.js): the answer request and its 409, the pause
// ending elsewhere, another tab's pause and taking it over, the countdown's timer and the click
// that holds it, the note, and taking the keyboard. A subclass owns its view model (`model`:
// mode, info, other, busy, held, decided, countdown(), say()), its panel (`panel`: focus(),
// setCountdown()), and defines pause(data), render() and fit(). No side effects at import.
import { comfyGate } from "./comfy_api.js";
import { pauseKey } from "./gate_api.js";
import { secondsLeft } from "./gate_grid.js";
import { HttpError } from "./http.js";

const TICK_MS = 250;

export class PauseController {
  /**
   * @param {object} hooks  from the extension entry: `claimed(pause)` when this node took a
   *   pause over (the entry tracks it like a pause event), `refresh()` to ask GET /pending now
   * @param {{kind: string, waits: string}} words  "Image Gate", "waits for a route. Open it to
   *   choose": the toast of a pause that is not on screen
   */
  constructor(app, node, hooks, words) {
    this.app = app;
    this.node = node;
    this.hooks = hooks;
    this.words = words;
    this.timer = null;
    this.answeredToken = null;
  }

  /** The server no longer waits on `token` (answered elsewhere, taken over, run ended). */
  expire(token, reason = "That pause is over: the run ended or was answered elsewhere.") {
    const m = this.model;
    if (m.info?.token !== token || m.mode !== "paused") return;
    m.expired = m.info; // its done event may still come: see the Image Gate's done()
    m.mode = "idle";
    m.info = null;
    this.tick();
    this.say(reason);
    this.render();
    this.fit({ shrink: true });
  }

  /** Another tab's pause of this node: a notice, and "Take over" once that tab is gone. */
  elsewhere(data) {
    const m = this.model;
    const ours = m.mode === "paused" && m.info && pauseKey(m.info) === pauseKey(data);
    const fresh = !m.other || pauseKey(m.other) !== pauseKey(data);
    m.other = data;
    m.info = null;
    m.expired = null;
    m.decided = null;
    m.mode = "elsewhere";
    this.tick();
    if (ours) this.say("Another tab took this pause over.");
    else if (fresh) this.say("");
    this.render();
    this.fit({ shrink: true });
  }

  /** That other tab's pause is no longer waiting. */
  elsewhereOver(key) {
    const m = this.model;
    if (m.mode !== "elsewhere" || pauseKey(m.other) !== key) return;
    m.mode = "idle";
    m.other = null;
    this.say("");
    this.fit({ shrink: true });
  }

  /** Answer an orphaned pause from this tab: it gets a new token, the old tab's is dead. */
  async takeOver() {
    const m = this.model;
    if (m.mode !== "elsewhere" || m.busy) return;
    const { node } = m.other;
    m.busy++;
    this.render();
    let data;
    try {
      data = await comfyGate.takeOver(node);
    } catch (err) {
      this.say(`Could not take over: ${err.message}`, true);
      this.hooks.refresh?.();
      return;
    } finally {
      m.busy--;
      this.render();
    }
    if (this.hooks.claimed) this.hooks.claimed(data);
    else this.pause(data);
  }

  async request(what, fn) {
    const m = this.model;
    m.busy++;
    this.render();
    try {
      return await fn();
    } catch (err) {
      if (err instanceof HttpError && err.status === 409) {
        this.expire(m.info?.token, `That pause cannot be answered here: ${err.message}`);
        this.hooks.refresh?.(); // a pause of another tab now? then its notice shows
      } else {
        this.say(`${what} failed: ${err.message}`, true);
      }
      return undefined;
    } finally {
      m.busy--;
      this.render();
    }
  }

  /** Send this pause's answer with `send(node, token)`, then `decided()`; a pause event for it
   *  meanwhile is ignored. */
  async answer(what, send, decided) {
    if (this.model.mode !== "paused") return;
    const { node, token } = this.model.info;
    this.answeredToken = token;
    const ok = await this.request(what, () => send(node, token));
    if (ok) decided();
    else this.answeredToken = null;
  }

  /** Keep the countdown ticking while a pause has a deadline; stop it otherwise. */
  tick() {
    const m = this.model;
    const live = m.mode === "paused" && secondsLeft(m.info?.deadline) !== null && this.node.graph;
    if (live && !this.timer) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
    } else if (!live && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    if (live) this.panel.setCountdown(m.countdown());
  }

  /** Any click or key in the panel: a person is here, so the countdown stops (POST /hold once). */
  async hold() {
    const m = this.model;
    if (m.mode !== "paused" || m.held === m.info.token || secondsLeft(m.info.deadline) === null) return;
    const { node, token } = m.info;
    m.held = token;
    m.info = { ...m.info, deadline: null };
    this.panel.setCountdown(m.countdown());
    this.tick();
    try {
      await comfyGate.hold(node, token);
    } catch (err) {
      // 409: the pause is over (answered, timed out): its done event or GET /pending says so.
      if (err instanceof HttpError && err.status === 409) return;
      if (m.info?.token === token) this.say(`Could not stop the countdown: ${err.message}`, true);
    }
  }

  say(text, isError = false) {
    this.model.say(text, isError);
    this.render();
  }

  /** Take the keyboard if nobody else has it; say where the gate is when it is not on screen. */
  autoFocus() {
    if (this.node.graph !== this.app.canvas?.graph) {
      const where = this.node.graph?.name ? ` inside subgraph "${this.node.graph.name}"` : " in another graph";
      this.app.extensionManager?.toast?.add?.({
        severity: "info", summary: `${this.words.kind} is waiting`,
        detail: `"${this.node.title}"${where} ${this.words.waits}.`, life: 8000,
      });
      return;
    }
    const active = document.activeElement;
    if (!active || active === document.body || active === this.app.canvas?.canvas) this.panel.focus();
  }
}
