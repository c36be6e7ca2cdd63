// The slot browser inside ComfyUI: a sidebar tab when the frontend has them, and a command
// that opens it in a floating panel either way. Here it can resume a parked slot (with this
// tab's client id, so the gate pauses in this tab). The extension entry makes one SlotBrowsers,
// which knows the browsers mounted now. No side effects until registered.
import { mountBrowser } from "./browser/slot_browser.js";
import { comfyBus, comfyGate } from "./comfy_api.js";
import { el } from "./format.js";

export const TAB_ID = "dataset-gates-slots";
export const OPEN_COMMAND = "DatasetGates.OpenSlotBrowser";

/** Where a resumed prompt is: paused at a gate (GET /pending), else ComfyUI's queue/history. */
async function promptState(promptId) {
  const pending = await comfyGate.pending().catch(() => null);
  if (pending?.some((p) => p.prompt_id === promptId)) return "paused at its gate";
  return comfyGate.promptState(promptId);
}

/** The page's slot browsers: the sidebar tab, the floating panel, and refreshing them all. */
export class SlotBrowsers {
  constructor() {
    this.mounted = new Set(); // refreshed after every run
  }

  /** Mount a browser into `target`; returns the function that unmounts it. */
  mount(target) {
    const browser = mountBrowser(target, { bus: comfyBus, resume: (id, options) => comfyBus.resume(id, options), promptState });
    this.mounted.add(browser);
    return () => {
      this.mounted.delete(browser);
      browser.destroy();
    };
  }

  /** Add the sidebar tab; returns false when this frontend has no sidebar tabs. */
  registerTab(app) {
    const manager = app.extensionManager;
    // extensionManager.sidebarTab (1.35 has it too); its registerSidebarTab alias is deprecated.
    const tabs = typeof manager?.sidebarTab?.registerSidebarTab === "function" ? manager.sidebarTab : manager;
    if (typeof tabs?.registerSidebarTab !== "function") return false;
    let unmount = null;
    tabs.registerSidebarTab({
      id: TAB_ID, icon: "pi pi-images", title: "Slots", tooltip: "Dataset Gates: bus slots", type: "custom",
      render: (target) => {
        if (target.dataset.dgMounted) return; // Vue may call render again for the same element
        target.dataset.dgMounted = "1";
        unmount?.();
        unmount = this.mount(target);
      },
      destroy() {
        unmount?.();
        unmount = null;
      },
    });
    return true;
  }

  /** The command's action: the browser in a floating panel (closed again by a second call). */
  toggleFloating() {
    const open = document.querySelector(".dg-floating-browser");
    if (open) {
      open.dgUnmount?.();
      open.remove();
      return;
    }
    const body = el("div.dg-floating-body");
    const panel = el("div.dg-root.dg-floating-browser",
      el("div.dg-floating-head", el("strong", {}, "Dataset Gates · slots"), el("span.dg-grow"),
        el("button.dg-btn", { type: "button", onclick: () => this.toggleFloating() }, "✕")),
      body);
    document.body.append(panel);
    panel.dgUnmount = this.mount(body);
  }

  refresh() {
    for (const browser of this.mounted) browser.refresh();
  }
}
