// The slot browser: every bus slot as a card; open one to page its batch, step through its kept
// versions (id@-1, ...), pin, rename, delete it or download its exact tensors. A parked slot (a
// gate that timed out kept its batch and prompt there) is marked, and inside ComfyUI it can be
// resumed. Used by the standalone page (web/browser/index.html, served by
// `python -m gates serve`) and by the ComfyUI sidebar tab. Side-effect free: nothing happens
// until mountBrowser() is called, and it never touches ComfyUI's own scripts.
import { age, el, ensureStylesheet, humanBytes, shapeText, sizeText, when } from "../format.js";
import { PREFIX, fetchClient } from "../http.js";

/** What an empty bus says: how slots get made. */
export const EMPTY_BUS = "No slots yet. Slots are made when a gate with a send_id passes a batch, " +
  "when a Bus Save node runs, or with `gates import ID FILE...` on the command line.";

/** The standalone page cannot resume: it has no ComfyUI to queue the prompt in. */
export const RESUME_NEEDS_COMFYUI = "Resume needs ComfyUI: open this bus in ComfyUI's sidebar.";
const RESUME_POLL_MS = 1000;
const FINAL_STATES = new Set(["done", "failed", "stopped", "unknown"]);

/** A slot a gate parked when its countdown ran out (meta.parked). */
export function isParked(slot) {
  return slot?.meta?.parked === true;
}

/** The slot's meta for the facts table: the stored API prompt only as its size. */
function metaText(meta) {
  if (!meta || !Object.keys(meta).length) return "-";
  const { prompt, ...rest } = meta;
  const text = JSON.stringify(rest);
  return prompt && typeof prompt === "object" ? `${text} + an API prompt of ${Object.keys(prompt).length} nodes` : text;
}

/**
 * Render the browser into `root`.
 * @param {HTMLElement} root
 * @param {{client?: object, resume?: (id: string) => Promise<{prompt_id: string}>,
 *   promptState?: (promptId: string) => Promise<string>}} options
 *   client: the pack's HTTP client (web/http.js) on the server: fetchClient("") on the
 *   standalone page (the default), gate_api.js's `comfy` inside ComfyUI. resume / promptState:
 *   given inside ComfyUI only (POST /resume/{id} with the tab's client id; where that prompt
 *   is now); without them a parked slot shows why it cannot be resumed here.
 * @returns {{refresh: () => Promise<void>, destroy: () => void}}
 */
export function mountBrowser(root, { client = fetchClient(), resume = null, promptState = null } = {}) {
  ensureStylesheet("browser", new URL("./browser.css", import.meta.url));
  const slotPath = (id) => encodeURIComponent(id);
  // versions: the open slot's kept versions (newest first); shown: the one on screen
  const state = { bus: "", slots: [], filter: "", open: null, index: 0, versions: [], shown: null };
  const resumed = new Map(); // slot id -> {promptId, state, error}: resumes from this page
  let polling = null;
  let destroyed = false;

  const status = el("div.dg-status", { role: "status" });
  const grid = el("div.dg-grid");
  const detail = el("section.dg-detail", { hidden: true });
  const filter = el("input.dg-filter", {
    type: "search", placeholder: "filter ids", oninput: () => { state.filter = filter.value; drawGrid(); },
  });
  const busLabel = el("span.dg-bus");
  const frame = el("div.dg-root.dg-browser", { tabIndex: -1 },
    el("header.dg-bar",
      el("strong.dg-title", {}, "Slots"), busLabel,
      el("span.dg-grow"), filter,
      el("button.dg-btn.dg-refresh", { type: "button", onclick: () => refresh() }, "Refresh")),
    status, grid, detail);
  frame.addEventListener("keydown", onKey);
  root.replaceChildren(frame);

  function say(text, isError = false) {
    status.dataset.kind = "";
    status.textContent = text || "";
    status.classList.toggle("dg-error", Boolean(isError && text));
  }

  async function refresh() {
    try {
      const data = await client.get(`${PREFIX}/bus/list`);
      state.bus = data.bus || "";
      state.slots = Array.isArray(data.slots) ? data.slots : [];
      busLabel.textContent = state.bus;
      busLabel.title = state.bus;
      if (status.dataset.kind === "list") say("");
      drawGrid();
      if (state.open) {
        const fresh = state.slots.find((s) => s.id === state.open.id);
        if (fresh) openSlot(fresh, state.index); else closeSlot();
      }
    } catch (err) {
      say(`Could not list slots: ${err.message}`, true);
      status.dataset.kind = "list";
    }
  }

  /** The server's thumbnail of a listed slot or version: its own thumb_url, with its cache key. */
  function thumbUrl(slot) {
    return client.url(slot.thumb_url);
  }

  function card(slot) {
    const bad = Boolean(slot.error);
    const thumb = bad
      ? el("div.dg-thumb.dg-thumb-missing", {}, "damaged")
      : el("img.dg-thumb", { src: thumbUrl(slot), alt: slot.id, loading: "lazy", decoding: "async" });
    if (!bad) thumb.addEventListener("error", () => thumb.classList.add("dg-thumb-missing"), { once: true });
    const facts = bad
      ? [el("div.dg-card-error", {}, slot.error)]
      : [
        el("div.dg-card-line", {}, el("span.dg-shape", {}, shapeText(slot.image_shape)), " ",
          el("span.dg-dtype", {}, slot.image_dtype)),
        el("div.dg-card-line", {}, `batch ${slot.batch} · ${sizeText(slot.image_shape)} · `,
          el("span.dg-bytes", {}, humanBytes(slot.bytes))),
        el("div.dg-card-line.dg-muted", { title: when(slot.created) }, `${when(slot.created)} (${age(slot.created)})`),
        ...(slot.versions > 1 || slot.pinned ? [el("div.dg-card-line.dg-muted", {},
          [slot.versions > 1 ? `${slot.versions} versions` : "", slot.pinned ? "📌 pinned" : ""]
            .filter(Boolean).join(" · "))] : []),
        ...(isParked(slot) ? [el("div.dg-card-line", {}, el("span.dg-parked-badge", {
          title: "A gate's countdown ran out and parked this batch here with its prompt",
        }, "parked"), resumed.has(slot.id) ? ` ${resumeText(resumed.get(slot.id))}` : "")] : []),
      ];
    return el(`button.dg-card${bad ? ".dg-bad" : ""}${isParked(slot) ? ".dg-parked" : ""}`, {
      type: "button", dataset: { slotId: slot.id }, title: `Open ${slot.id}`,
      onclick: () => openSlot(slot, 0),
    }, thumb, el("div.dg-card-id", {}, slot.id), ...facts);
  }

  function drawGrid() {
    const needle = state.filter.trim().toLowerCase();
    const shown = state.slots.filter((s) => !needle || s.id.toLowerCase().includes(needle));
    grid.replaceChildren(...shown.map(card));
    if (!shown.length) {
      grid.append(el("div.dg-empty", {}, state.slots.length ? "No slot matches the filter." : EMPTY_BUS));
    }
  }

  function openSlot(slot, index) {
    if (!state.open || state.open.id !== slot.id) {
      state.versions = [];
      state.shown = null;
    }
    state.open = slot;
    if (slot.versions > 1) loadVersions(slot);
    state.index = Math.min(Math.max(0, index), Math.max(0, (slot.batch || 1) - 1));
    grid.hidden = true;
    detail.hidden = false;
    drawDetail();
    frame.focus({ preventScroll: true });
  }

  async function loadVersions(slot) {
    try {
      const data = await client.get(`${PREFIX}/bus/history/${slotPath(slot.id)}`);
      if (state.open?.id !== slot.id) return;
      state.versions = Array.isArray(data.versions) ? data.versions : [];
      state.shown = state.versions.find((v) => v.ref === state.shown?.ref) || null;
      drawDetail();
    } catch (err) {
      say(`Could not list versions of ${slot.id}: ${err.message}`, true);
    }
  }

  function showVersion(version) {
    state.shown = version.version ? version : null;
    state.index = Math.min(state.index, Math.max(0, (version.batch || 1) - 1));
    drawDetail();
  }

  async function pin(id, pinned) {
    try {
      state.open = await client.postJson(`${PREFIX}/bus/${slotPath(id)}/pin`, { pinned });
      await refresh();
      say(pinned ? `Pinned ${id}: the bus quota never removes it.` : `Unpinned ${id}.`);
    } catch (err) {
      say(`Pin failed: ${err.message}`, true);
    }
  }

  function closeSlot() {
    state.open = null;
    state.versions = [];
    state.shown = null;
    detail.hidden = true;
    detail.replaceChildren();
    grid.hidden = false;
  }

  function page(step) {
    const slot = state.shown || state.open;
    if (!slot || slot.error) return;
    const next = state.index + step;
    if (next < 0 || next >= slot.batch) return;
    state.index = next;
    drawDetail();
    // The pager buttons were just replaced: keep the keyboard on the browser.
    if (!frame.contains(document.activeElement)) frame.focus({ preventScroll: true });
  }

  function versionStrip() {
    if (state.versions.length < 2) return [];
    const current = (state.shown || state.open).ref || state.open.id;
    return [el("div.dg-versions", { role: "group", "aria-label": "versions" },
      ...state.versions.map((v) => el(`button.dg-version${v.ref === current ? ".dg-current" : ""}`, {
        type: "button", title: `${v.ref} · ${when(v.created)}`, dataset: { ref: v.ref },
        onclick: () => showVersion(v),
      }, el("img.dg-version-thumb", { src: thumbUrl(v), alt: v.ref, loading: "lazy" }),
      el("span", {}, v.version ? `@${v.version}` : "latest"))))];
  }

  function drawDetail() {
    const slot = state.shown || state.open;
    const ref = slot.ref || slot.id;
    const bad = Boolean(slot.error);
    const count = bad ? 0 : slot.batch;
    // The checksum names the content: a republished slot's image is a new URL, never a cached one.
    const key = new URLSearchParams({ v: slot.checksum ?? "" });
    const image = bad
      ? el("div.dg-detail-missing", {}, slot.error)
      : el("img.dg-detail-img", {
        alt: `${ref} image ${state.index + 1}`,
        src: client.url(`${PREFIX}/bus/image/${slotPath(ref)}/${state.index}?${key}`),
      });
    const pager = el("div.dg-pager",
      el("button.dg-btn.dg-prev", { type: "button", disabled: state.index <= 0 || bad, onclick: () => page(-1) }, "◀"),
      el("span.dg-page-label", {}, count ? `${state.index + 1} / ${count}` : "-"),
      el("button.dg-btn.dg-next", { type: "button", disabled: bad || state.index >= count - 1, onclick: () => page(1) }, "▶"));
    const rows = [
      ["shape", shapeText(slot.image_shape)], ["dtype", slot.image_dtype || "-"],
      ["mask", slot.mask_shape ? `${shapeText(slot.mask_shape)} ${slot.mask_dtype || ""}` : "none"],
      ["size", `${humanBytes(slot.bytes)} (${slot.bytes} bytes)`], ["created", `${when(slot.created)} (${age(slot.created)})`],
      ["checksum", slot.checksum || "-"],
      ...(slot.versions > 1 ? [["versions", `${slot.versions} kept (older ones load as ${slot.id}@-1, @-2, …)`]] : []),
      ...(slot.version ? [["showing", `${ref}: get_id "${ref}" resumes from this version`]] : []),
      ["pinned", slot.pinned ? "yes: never pruned by the bus quota" : "no"],
      ["meta", metaText(slot.meta)],
    ];
    const owner = state.open;  // rename, pin and delete act on the slot, not one version
    const renameInput = el("input.dg-rename-input", { type: "text", value: owner.id, spellcheck: false, "aria-label": "new id" });
    const overwrite = el("input.dg-overwrite", { type: "checkbox" });
    const doRename = () => rename(owner.id, renameInput.value.trim(), overwrite.checked);
    renameInput.addEventListener("keydown", (e) => { if (e.key === "Enter") doRename(); });
    detail.replaceChildren(
      el("div.dg-bar",
        el("button.dg-btn.dg-back", { type: "button", onclick: () => { closeSlot(); say(""); } }, "← All slots"),
        el("strong.dg-detail-id", {}, ref)),
      ...versionStrip(),
      ...parkedSection(owner),
      el("div.dg-viewer", {}, image), pager,
      el("table.dg-facts", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))),
      el("div.dg-actions",
        el("label.dg-rename-row", {}, "Rename to ", renameInput),
        el("label.dg-check", {}, overwrite, " overwrite"),
        el("button.dg-btn.dg-rename", { type: "button", onclick: doRename }, "Rename")),
      el("div.dg-actions",
        el("a.dg-btn.dg-download", {
          href: client.url(`${PREFIX}/bus/tensors/${slotPath(ref)}`), download: `${ref.replace("@", "_")}.safetensors`,
        }, "Download tensors"),
        el("button.dg-btn.dg-pin", { type: "button", onclick: () => pin(owner.id, !owner.pinned) },
          owner.pinned ? "Unpin" : "Pin"),
        el("button.dg-btn.dg-danger.dg-delete", { type: "button", onclick: () => remove(owner.id) }, "Delete…")));
  }

  /** A parked slot: what parked it, and Resume (inside ComfyUI) or why not (standalone). */
  function parkedSection(slot) {
    const run = resumed.get(slot.id);
    if (!isParked(slot)) {
      // Answered since: the slot holds the decision now; the resumed prompt is still followed.
      return run ? [el(`div.dg-resume-status${run.error ? ".dg-error" : ""}`, { role: "status" }, resumeText(run))] : [];
    }
    const meta = slot.meta;
    const where = [meta.node ? `gate ${meta.node}` : "a gate", meta.prompt_id ? `of prompt ${meta.prompt_id}` : ""]
      .filter(Boolean).join(" ");
    const parts = [el("span.dg-parked-badge", {}, "parked"), el("span", {}, `by ${where} when its countdown ran out.`)];
    if (!meta.prompt) {
      // The server keeps no prompt too large for the slot header: nothing to queue again.
      return [el("div.dg-parked-box", {}, el("div.dg-parked-row", {}, ...parts),
        el("div.dg-muted.dg-resume-note", {}, `Its prompt was too large to keep: load it with get_id "${slot.id}" `
          + "in the workflow instead."))];
    }
    if (resume) {
      parts.push(el("span.dg-grow"), el("button.dg-btn.dg-primary.dg-resume", {
        type: "button", disabled: Boolean(run && !run.error && !FINAL_STATES.has(run.state)),
        title: "Queue its prompt again in this tab: the gate pauses on this batch with its recorded routes",
        onclick: () => resumeSlot(slot.id),
      }, "▶ Resume"));
    }
    const rows = [el("div.dg-parked-row", {}, ...parts)];
    if (!resume) rows.push(el("div.dg-muted.dg-resume-note", {}, RESUME_NEEDS_COMFYUI));
    if (run) {
      rows.push(el(`div.dg-resume-status${run.error ? ".dg-error" : ""}`, { role: "status" }, resumeText(run)));
    }
    return [el("div.dg-parked-box", {}, ...rows)];
  }

  function resumeText(run) {
    if (run.error) return `Resume failed: ${run.error}`;
    if (!run.promptId) return "Resuming…";
    return `Resumed as prompt ${run.promptId}: ${run.state}`;
  }

  async function resumeSlot(id) {
    if (!resume) return;
    resumed.set(id, { promptId: null, state: "queueing", error: null });
    redraw();
    try {
      const reply = await resume(id);
      resumed.set(id, { promptId: reply.prompt_id, state: "queued", error: null });
      say(`Resumed ${id}: prompt ${reply.prompt_id} is queued; its gate pauses in this tab.`);
    } catch (err) {
      resumed.set(id, { promptId: null, state: "", error: err.message });
    }
    redraw();
    pollResumed();
  }

  /** Follow resumed prompts until they end (a few requests a second, only while some run). */
  function pollResumed() {
    if (polling || destroyed || !promptState) return;
    const live = [...resumed.entries()].filter(([, r]) => r.promptId && !FINAL_STATES.has(r.state));
    if (!live.length) return;
    polling = setTimeout(async () => {
      for (const [id, run] of live) {
        try {
          const now = await promptState(run.promptId);
          if (now !== run.state) {
            resumed.set(id, { ...run, state: now });
            redraw();
          }
        } catch { /* try again on the next round */ }
      }
      polling = null;
      pollResumed();
    }, RESUME_POLL_MS);
  }

  function redraw() {
    if (destroyed) return;
    drawGrid();
    if (state.open) drawDetail();
  }

  async function rename(id, to, overwrite) {
    try {
      const info = await client.postJson(`${PREFIX}/bus/${slotPath(id)}/rename`, { to, overwrite });
      state.open = info;
      await refresh();
      say(`Renamed ${id} to ${info.id}.`);
    } catch (err) {
      say(`Rename failed: ${err.message}`, true);
    }
  }

  async function remove(id) {
    if (!window.confirm(`Delete slot "${id}"? Its tensors are removed for good.`)) return;
    try {
      await client.delete(`${PREFIX}/bus/${slotPath(id)}`);
      closeSlot();
      await refresh();
      say(`Deleted ${id}.`);
    } catch (err) {
      say(`Delete failed: ${err.message}`, true);
    }
  }

  function onKey(event) {
    if (!state.open || event.target.closest("input, textarea")) return;
    const actions = { ArrowLeft: () => page(-1), ArrowRight: () => page(1), Escape: () => { closeSlot(); say(""); } };
    const act = actions[event.key];
    if (!act) return;
    event.preventDefault();
    event.stopPropagation();
    act();
  }

  refresh();
  return {
    refresh,
    destroy() {
      destroyed = true;
      clearTimeout(polling);
      frame.removeEventListener("keydown", onKey);
      root.replaceChildren();
    },
  };
}
