// What both gates' views share (the Image Gate's gate_view.js / gate_panel.js, the Text
// Gate's text_gate_view.js / text_gate_panel.js): taking a pause into a view model, the
// countdown's line, and drawing it. No DOM of its own, no requests, no side effects.
import { clock, onTimeoutText, secondsLeft } from "./gate_grid.js";

/**
 * Show `data`, a pause of this tab, in `model` (mode, info, other, held, decided): paused, and
 * a countdown stopped here stays stopped, whatever an older GET /pending answer says. Returns
 * true when it is a new pause (not one shown again), whose own state the caller then resets.
 */
export function takePause(model, data) {
  const fresh = model.info?.token !== data.token;
  model.info = model.held === data.token ? { ...data, deadline: null } : data;
  model.other = null;
  model.expired = null;
  model.mode = "paused";
  model.decided = null;
  return fresh;
}

/**
 * A pause's countdown line, {text, urgent}, or null without a countdown: `pause` has the
 * `deadline` and `on_timeout`, `held` is the token whose countdown a click stopped here.
 */
export function countdownLine(pause, held, routeName = undefined) {
  if (held === pause.token) return { text: "Countdown stopped: the gate waits for you.", urgent: false };
  const left = secondsLeft(pause.deadline);
  if (left === null) return null;
  const then = onTimeoutText(pause.on_timeout, routeName);
  if (left <= 0) return { text: `Time is up: the gate ${then}…`, urgent: true };
  return { text: `${clock(left)} left, then the gate ${then}. Click here to stay.`, urgent: left <= 10 };
}

/** Draw a countdown line (null: hidden) into its element. */
export function drawCountdown(element, countdown) {
  element.hidden = !countdown;
  if (!countdown) return;
  element.textContent = countdown.text;
  element.classList.toggle("dg-urgent", Boolean(countdown.urgent));
}
