// One Text Gate node in the page: the controller. It wires the panel (text_gate_panel.js) to
// the node, takes the pause / done events and the edits and keys the panel reports, sends the
// text on (POST /choice {text}) or stops, and sizes the node; the rest of what a gate does with
// a pause (another tab's pause, the countdown) is pause_controller.js's. What the panel shows is
// the model's (text_gate_view.js). The extension entry creates one per node (node.dgText). No
// side effects at import.
import { comfyGate } from "./comfy_api.js";
import { PauseController } from "./pause_controller.js";
import { TextGatePanel } from "./text_gate_panel.js";
import { TextGateModel } from "./text_gate_view.js";

export class TextGateController extends PauseController {
  constructor(app, node, hooks = {}) {
    super(app, node, hooks, { kind: "Text Gate", waits: "waits for you to pass its text on. Open it to answer" });
    this.model = new TextGateModel();
    const m = this.model;
    this.panel = new TextGatePanel({
      type: (text) => {
        m.type(text);
        this.render();
      },
      edit: () => m.startEdit(),
      leave: () => m.leave(),
      restore: () => {
        m.restore();
        this.render();
      },
      send: () => this.send(),
      stop: () => this.stop(),
      touch: () => this.hold(),
      takeOver: () => this.takeOver(),
      layout: () => this.fit({ shrink: m.mode === "idle" }),
    });
    this.widget = node.addDOMWidget("dg_text", "dg_text", this.panel.element, {
      serialize: false, getValue: () => "", setValue: () => {}, getMinHeight: () => this.panel.minHeight(),
    });
    this.widget.serialize = false;
    this.render();
  }

  pause(data) {
    if (data.kind !== "text" || data.token === this.answeredToken) return; // answered here: done is on its way
    const fresh = this.model.showPause(data);
    if (fresh) this.say("");
    this.tick();
    this.render();
    if (fresh) this.autoFocus();
  }

  /** The run went on without an answer from here: the countdown ran out (passed as it came,
   *  or stopped), or the run was cancelled. An answer from here has said what passed already. */
  done(data) {
    const m = this.model;
    if (!m.info || data.token !== m.info.token || data.token === this.answeredToken) return;
    this.decide(data.route ? m.shown : null, Boolean(data.timed_out));
  }

  send() {
    const m = this.model;
    if (m.mode !== "paused" || m.busy) return undefined;
    const text = m.text;
    return this.answer("Sending", (node, token) => comfyGate.passText(node, token, text), () => this.decide(text));
  }

  stop() {
    return this.answer("Stop", (node, token) => comfyGate.stop(node, token), () => this.decide(null));
  }

  decide(passed, timedOut = false) {
    this.model.decide(passed, timedOut);
    this.tick();
    this.say("");
  }

  render() {
    this.panel.render(this.model.panelModel());
  }

  /** Grow the node to its content (`shrink`: also smaller). */
  fit({ shrink = false } = {}) {
    const node = this.node;
    if (!node.size) return;
    const need = node.computeSize()[1];
    if (node.size[1] < need || (shrink && node.size[1] > need)) {
      node.setSize([node.size[0], need]);
      node.setDirtyCanvas?.(true, true);
    }
  }
}
