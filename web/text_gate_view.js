// One Text Gate's state and what its panel shows: the mode (idle, paused, decided, elsewhere),
// the pause, the text as it stands and as the pause showed it, the text from before the
// current edit (Esc puts it back), the countdown a click stopped, requests in flight and the
// message. No DOM and no requests: TextGateController (text_gate_node.js) changes it on events
// and keys and hands panelModel() to TextGatePanel. No side effects.
import { countdownLine, takePause } from "./pause_view.js";

const HINT = "Enter: Send · Shift+Enter: new line · Esc: undo this edit (then Esc: Stop)";

export class TextGateModel {
  constructor() {
    this.mode = "idle"; // idle | paused | decided | elsewhere (another tab's pause)
    this.info = null; // the pause (this tab's, with its token)
    this.other = null; // another tab's pause (no token) while mode is "elsewhere"
    this.text = ""; // the text as it stands
    this.shown = ""; // the text as the pause showed it
    this.editStart = null; // the text when the current edit began: Esc puts it back
    this.held = null; // the token whose countdown a click stopped
    this.busy = 0; // requests in flight
    this.decided = null; // the text passed on, or null (stopped)
    this.timedOut = false;
    this.message = "";
    this.messageIsError = false;
  }

  /** A pause of this tab for this node; returns true when it is a new one (not one shown again). */
  showPause(data) {
    const fresh = takePause(this, data);
    if (fresh) {
      this.text = String(data.text ?? "");
      this.shown = this.text;
      this.editStart = null;
    }
    return fresh;
  }

  type(text) {
    if (this.mode === "paused") this.text = String(text);
  }

  /** The text box took the keyboard: an edit begins. */
  startEdit() {
    if (this.mode === "paused" && this.editStart === null) this.editStart = this.text;
  }

  /** Esc in the text: the text as it was when the edit began. */
  restore() {
    if (this.editStart !== null) this.text = this.editStart;
    this.editStart = null;
  }

  leave() {
    this.editStart = null;
  }

  /** The pause was answered: `passed` is the text passed on, null when the run was stopped. */
  decide(passed, timedOut = false) {
    this.mode = "decided";
    this.decided = passed;
    this.timedOut = timedOut;
    this.editStart = null;
    if (passed !== null) this.text = passed;
  }

  say(text, isError = false) {
    this.message = text;
    this.messageIsError = isError;
  }

  countdown() {
    return this.mode === "paused" ? countdownLine(this.info, this.held) : null;
  }

  statusText() {
    if (this.mode === "paused") return "Paused: edit the text if you like, then Send";
    if (this.mode === "elsewhere") return "A Text Gate is waiting in another tab.";
    if (this.mode !== "decided") return "Text Gate: each run pauses here until you pass the text on.";
    if (this.decided === null) {
      return this.timedOut ? "Time ran out: stopped, nothing was passed on" : "Stopped: nothing was passed on";
    }
    if (this.timedOut) return "Time ran out: passed on as it came";
    return this.decided === this.shown ? "Passed on" : "Passed on, edited";
  }

  note() {
    if (this.message || this.mode !== "elsewhere") return this.message;
    return this.other.orphaned ? "That tab is gone: take the pause over to answer it here."
      : "Answer it in the tab that queued the run.";
  }

  /** What TextGatePanel draws. */
  panelModel() {
    const paused = this.mode === "paused";
    return {
      mode: this.mode,
      text: this.text,
      showText: paused || this.mode === "decided",
      editable: paused,
      edited: paused && this.text !== this.shown,
      status: this.statusText(),
      hint: paused ? HINT : "",
      countdown: this.countdown(),
      busy: this.busy > 0,
      orphaned: this.mode === "elsewhere" && Boolean(this.other?.orphaned),
      note: this.note(),
      noteIsError: Boolean(this.message) && this.messageIsError,
    };
  }
}
