// The slot browser: every bus slot as a card; open one to page its batch (and its mask), step
// through its kept versions (id@-1, ...), check its checksum, pin, rename, delete it or download
// its exact tensors. A damaged slot says why and offers what still works. A parked slot (a
// gate that timed out kept its batch and prompt there) is marked with the worker that parked
// it, a "Parked runs" toggle lists only those, and it can be resumed on this ComfyUI (inside
// ComfyUI) or on a worker of the farm (GET /workers), its batch paused again there or decided
// here first, image by image, as at the pause. A collapsible Datasets panel above the slots shows the progress and kept-set buckets
// of the dataset folders the server's Dataset Load nodes read lately, and of any folder typed
// there. Used by the standalone page (web/browser/index.html, served by
// `python -m gates serve`) and by the ComfyUI sidebar tab. This module is the view (DOM only:
// it reports clicks and keys and draws the model's view()); slot_model.js holds the state and
// makes the requests. Side-effect free: nothing happens until mountBrowser() is called, and it
// never touches ComfyUI's own scripts.
import { drawBuckets } from "../dataset_view.js";
import { age, el, ensureStylesheet, humanBytes, shapeText, sizeText, when } from "../format.js";
import { labelOf, routeTitle } from "../gate_outputs.js";
import { CARDS_PAGE, DEFAULT_ROUTE, MAX_DATASET_DEPTH, SlotBrowserModel, isParked, parkedBy } from "./slot_model.js";

/** What an empty bus says: how slots get made. */
export const EMPTY_BUS = "No slots yet. Slots are made when a gate with a send_id passes a batch, " +
  "when a Bus Save node runs, or with `gates import ID FILE...` on the command line.";

/** The standalone page cannot resume: it has no ComfyUI to queue the prompt in. */
export const RESUME_NEEDS_COMFYUI = "Resume needs ComfyUI: open this bus in ComfyUI's sidebar.";
/** ...unless the server lists the farm's workers, which can. */
export const WORKERS_HINT = "Or list the workers of this bus in DATASET_GATES_WORKERS where this page is served: "
  + "Resume then queues it on the one you choose.";

/** What "Decide here" says of images left alone: the pause's own rule. */
export const DECIDE_NOTE = `One route per image, as at the pause: select an image, then a route button or its key `
  + `(1-9, 0 for 10); it moves on to the next image. An image you leave goes down route ${DEFAULT_ROUTE}, `
  + "as at the pause an image given none does.";

/** What a damaged slot still offers: its file cannot be trusted, its folder can be moved or removed. */
export const DAMAGED_NOTE = "Its tensors cannot be trusted: rename it to keep it aside, or delete it.";

/** What the Datasets panel says before any Dataset Load ran on this server. */
export const NO_DATASETS = "No dataset read yet: the folders Dataset Load nodes read show here after they run. "
  + "Type a folder above to see its progress now.";

let datalists = 0; // each view's folder list needs an id of its own

/** A tensor's shape with what its dimensions are: "[B,H,W] 2×512×768 float32". */
function tensorText(shape, dtype, dims = { 2: "H,W", 3: "B,H,W", 4: "B,H,W,C" }) {
  const named = dims[shape?.length];
  return `${named ? `[${named}] ` : ""}${shapeText(shape)} ${dtype || ""}`.trim();
}

/** The slot's meta for the facts table: the stored API prompt only as its size, its seal (a
 *  parked run's, see gates/gate/seal.py) only as a word. */
function metaText(meta) {
  if (!meta || !Object.keys(meta).length) return "-";
  const { prompt, seal, ...rest } = meta;
  const text = JSON.stringify(rest);
  const sealed = seal ? " (sealed)" : "";
  return prompt && typeof prompt === "object" ? `${text} + an API prompt of ${Object.keys(prompt).length} nodes${sealed}` : text;
}

export class SlotBrowserView {
  /**
   * @param {Record<string, Function>} on refresh(), filter(text), more() (draw more cards), open(slot), back(), page(step),
   *   showVersion(version), showLayer("image"|"mask"), verify(slot), download(slot) (resolves
   *   to whether the file may be fetched), rename(id, to, overwrite), pin(id, pinned),
   *   remove(id) (after the user confirmed), resume(id, {decided}) (after the user confirmed),
   *   parkedOnly(only), setTarget(value), decideHere(on), showImage(index), routeKey(route); the Datasets panel's
   *   showDatasets(open), refreshDatasets(), askDataset(folder, depth)
   */
  constructor(on) {
    this.on = on;
    this.model = null;
    this.gridKey = null;
    this.detailKey = null;
    this.datasetsKey = null;
    this.status = el("div.dg-status", { role: "status" });
    this.grid = el("div.dg-grid");
    this.detail = el("section.dg-detail", { hidden: true });
    this.filter = el("input.dg-filter", {
      type: "search", placeholder: "filter ids", oninput: () => on.filter(this.filter.value),
    });
    this.busLabel = el("span.dg-bus");
    this.parkedButton = el("button.dg-btn.dg-parked-filter", {
      type: "button", hidden: true, title: "List only the runs gates parked when their countdown ran out",
      onclick: () => on.parkedOnly(!this.model?.parked.only),
    });
    this.root = el("div.dg-root.dg-browser", { tabIndex: -1 },
      el("header.dg-bar",
        el("strong.dg-title", {}, "Slots"), this.busLabel,
        el("span.dg-grow"), this.parkedButton, this.filter,
        el("button.dg-btn.dg-refresh", { type: "button", onclick: () => on.refresh() }, "Refresh")),
      this.status, this.datasetsPanel(), this.grid, this.detail);
    this.root.addEventListener("keydown", (event) => this.onKey(event));
  }

  /** The Datasets panel's frame: its inputs stay while the reports below them are redrawn. */
  datasetsPanel() {
    const on = this.on;
    const ask = () => on.askDataset(this.dsFolder.value, this.dsDepth.value);
    this.dsFolders = el("datalist", { id: `dg-ds-folders-${++datalists}` });
    this.dsFolder = el("input.dg-ds-folder", {
      type: "text", placeholder: "a dataset folder on the server", spellcheck: false, "aria-label": "dataset folder",
      onkeydown: (e) => { if (e.key === "Enter") ask(); },
      onchange: () => { // a remembered folder brings its depth
        const known = this.model?.datasets.folders.find((f) => f.folder === this.dsFolder.value.trim());
        if (known) this.dsDepth.value = String(known.depth);
      },
    });
    this.dsFolder.setAttribute("list", this.dsFolders.id); // `list` is a read-only property
    this.dsDepth = el("input.dg-ds-depth", {
      type: "number", min: 0, max: MAX_DATASET_DEPTH, value: "0", "aria-label": "depth",
      title: "How deep to list subfolders: 0 is the folder's own files",
      onkeydown: (e) => { if (e.key === "Enter") ask(); },
    });
    this.dsAskButton = el("button.dg-btn.dg-ds-ask", { type: "button", onclick: ask }, "Show");
    this.dsStatus = el("div.dg-ds-status", { role: "status" });
    this.dsAsked = el("div.dg-ds-asked");
    this.dsList = el("div.dg-ds-recent");
    this.datasets = el("details.dg-datasets", { ontoggle: () => on.showDatasets(this.datasets.open) },
      el("summary.dg-ds-summary", {}, el("strong", {}, "Datasets"), el("span.dg-muted", {}, " progress and kept buckets")),
      el("div.dg-bar.dg-ds-form", this.dsFolder, this.dsFolders,
        el("label.dg-ds-depth-label", {}, "depth ", this.dsDepth), this.dsAskButton, el("span.dg-grow"),
        el("button.dg-btn.dg-ds-refresh", { type: "button", onclick: () => on.refreshDatasets() }, "Refresh")),
      this.dsStatus, this.dsAsked, this.dsList);
    return this.datasets;
  }

  /** @param {import("./slot_model.js").DatasetsView} d */
  drawDatasets(d) {
    this.datasetsKey = d.key;
    if (this.datasets.open !== d.open) this.datasets.open = d.open;
    this.datasets.dataset.busy = d.busy ? "1" : "";
    if (!this.dsFolder.value && d.folders.length && document.activeElement !== this.dsFolder) {
      this.dsFolder.value = d.folders[0].folder; // the last folder that reported
      this.dsDepth.value = String(d.folders[0].depth);
    }
    this.dsFolders.replaceChildren(...d.folders.map((f) => el("option", { value: f.folder })));
    this.dsStatus.textContent = d.message.text;
    this.dsStatus.classList.toggle("dg-error", d.message.isError);
    const asked = d.asked;
    this.dsAsked.replaceChildren(...(!asked ? []
      : asked.busy ? [el("div.dg-muted", {}, `Reading ${asked.folder}…`)]
        : asked.error ? [el("div.dg-ds-card.dg-bad", {}, el("div.dg-card-error", {}, asked.error))]
          : [this.datasetCard(asked.row)]));
    let list;
    if (d.recent === null) list = d.busy ? [el("div.dg-muted", {}, "Listing the datasets…")] : [];
    else if (!d.recent.length) list = [el("div.dg-empty.dg-ds-none", {}, NO_DATASETS)];
    else list = [el("div.dg-ds-head.dg-muted", {}, "Read lately, newest first:"), ...d.recent.map((row) => this.datasetCard(row))];
    this.dsList.replaceChildren(...list);
  }

  /** One report: its folder, then its error or its progress, kept set and bucket bars. */
  datasetCard(row) {
    const where = `${row.folder}${row.depth ? ` (depth ${row.depth})` : ""}`;
    const title = el("div.dg-ds-title", { title: where }, where);
    if (row.error) return el("div.dg-ds-card.dg-bad", { dataset: { folder: row.folder } }, title, el("div.dg-card-error", {}, row.error));
    return el("div.dg-ds-card", { dataset: { folder: row.folder } }, title,
      el("div.dg-ds-progress", {}, row.progress), el("div.dg-ds-kept.dg-muted", {}, row.kept),
      row.buckets.length ? drawBuckets(row.buckets) : null);
  }

  get element() {
    return this.root;
  }

  /** @param {import("./slot_model.js").BrowserView} m */
  render(m) {
    const before = this.model;
    const hadFocus = this.root.contains(document.activeElement);
    this.model = m;
    this.busLabel.textContent = m.bus;
    this.busLabel.title = m.bus;
    this.status.textContent = m.message.text;
    this.status.classList.toggle("dg-error", m.message.isError);
    this.parkedButton.hidden = !m.parked.count && !m.parked.only;
    this.parkedButton.textContent = `Parked runs (${m.parked.count})`;
    this.parkedButton.setAttribute("aria-pressed", String(m.parked.only));
    this.parkedButton.classList.toggle("dg-current", m.parked.only);
    if (m.datasets && m.datasets.key !== this.datasetsKey) this.drawDatasets(m.datasets);
    if (m.grid && m.grid.key !== this.gridKey) this.drawGrid(m.grid);
    if (m.detail && m.detail.key !== this.detailKey) this.detail.replaceChildren(...this.drawDetail(m.detail));
    else if (!m.detail) this.detail.replaceChildren();
    this.detailKey = m.detail?.key ?? null;
    this.grid.hidden = Boolean(m.detail);
    this.datasets.hidden = Boolean(m.detail); // an open slot has the page to itself
    this.detail.hidden = !m.detail;
    // A slot just opened takes the keys (arrows page, Esc goes back); a focused button that was
    // just replaced (the pager's) must not drop them to the page.
    const opened = m.detail && m.detail.owner.id !== before?.detail?.owner.id;
    if ((opened || hadFocus) && !this.root.contains(document.activeElement)) this.root.focus({ preventScroll: true });
  }

  drawGrid(grid) {
    this.gridKey = grid.key;
    this.grid.replaceChildren(...grid.cards.map((card) => this.card(card)));
    if (grid.more) {
      this.grid.append(el("button.dg-btn.dg-more", { type: "button", onclick: () => this.on.more() },
        `Show ${Math.min(grid.more, CARDS_PAGE)} more (${grid.more} not shown)`));
    }
    if (!grid.cards.length) {
      const none = this.model?.parked.only ? "No parked run matches: a gate parks its batch here when its countdown "
        + "runs out with on_timeout park." : "No slot matches the filter.";
      this.grid.append(el("div.dg-empty", {}, grid.total ? none : EMPTY_BUS));
    }
  }

  /** @param {import("./slot_model.js").Card} card */
  card({ slot, thumbUrl, resume, damage, parkedBy: by }) {
    const bad = Boolean(slot.error); // unreadable: nothing but the error is known
    const thumb = bad
      ? el("div.dg-thumb.dg-thumb-missing", {}, "damaged")
      : el("img.dg-thumb", { src: thumbUrl, alt: slot.id, loading: "lazy", decoding: "async" });
    if (!bad) thumb.addEventListener("error", () => thumb.classList.add("dg-thumb-missing"), { once: true });
    const channels = slot.image_shape?.[3];
    const facts = bad
      ? [el("div.dg-card-error", {}, slot.error)]
      : [
        el("div.dg-card-line", { title: `tensor ${tensorText(slot.image_shape, slot.image_dtype)}` },
          el("span.dg-size", {}, `${sizeText(slot.image_shape)} px`), ` · batch ${slot.batch}`),
        el("div.dg-card-line", {}, el("span.dg-dtype", {}, slot.image_dtype),
          ` · ${channels} channel${channels === 1 ? "" : "s"} · `, el("span.dg-bytes", {}, humanBytes(slot.bytes))),
        ...(damage ? [el("div.dg-card-error", {}, damage)] : []),
        el("div.dg-card-line.dg-muted", { title: when(slot.created) }, `${when(slot.created)} (${age(slot.created)})`),
        ...(slot.versions > 1 || slot.pinned ? [el("div.dg-card-line.dg-muted", {},
          [slot.versions > 1 ? `${slot.versions} versions` : "", slot.pinned ? "📌 pinned" : ""]
            .filter(Boolean).join(" · "))] : []),
        ...(isParked(slot) ? [el("div.dg-card-line", {}, el("span.dg-parked-badge", {
          title: "A gate's countdown ran out and parked this batch here with its prompt",
        }, "parked"), by ? el("span.dg-parked-by", {}, ` by ${by}`) : "", resume ? ` ${resume}` : "")] : []),
      ];
    return el(`button.dg-card${damage ? ".dg-bad" : ""}${isParked(slot) ? ".dg-parked" : ""}`, {
      type: "button", dataset: { slotId: slot.id }, title: `Open ${slot.id}`,
      onclick: () => this.on.open(slot),
    }, thumb, el("div.dg-card-id", {}, slot.id), ...facts);
  }

  versionStrip(versions) {
    if (!versions.length) return [];
    return [el("div.dg-versions", { role: "group", "aria-label": "versions" },
      ...versions.map((v) => el(`button.dg-version${v.current ? ".dg-current" : ""}`, {
        type: "button", title: `${v.ref} · ${when(v.created)}`, dataset: { ref: v.ref },
        onclick: () => this.on.showVersion(v),
      }, el("img.dg-version-thumb", { src: v.thumbUrl, alt: v.ref, loading: "lazy" }),
      el("span", {}, v.version ? `@${v.version}` : "latest"))))];
  }

  /** @param {import("./slot_model.js").Detail} d */
  drawDetail(d) {
    const { slot, owner, ref, damage } = d; // rename, pin and delete act on the owner, not one version
    const unreadable = Boolean(slot.error); // its header: nothing but the error is known
    const renameInput = el("input.dg-rename-input", { type: "text", value: owner.id, spellcheck: false, "aria-label": "new id" });
    const overwrite = el("input.dg-overwrite", { type: "checkbox" });
    const doRename = () => this.on.rename(owner.id, renameInput.value.trim(), overwrite.checked);
    renameInput.addEventListener("keydown", (e) => { if (e.key === "Enter") doRename(); });
    const remove = () => {
      if (window.confirm(`Delete slot "${owner.id}"? Its tensors are removed for good.`)) this.on.remove(owner.id);
    };
    const removeButton = el("button.dg-btn.dg-danger.dg-delete", { type: "button", onclick: remove }, "Delete…");
    return [
      el("div.dg-bar",
        el("button.dg-btn.dg-back", { type: "button", onclick: () => this.on.back() }, "← All slots"),
        el("strong.dg-detail-id", {}, ref)),
      ...this.versionStrip(d.versions),
      ...this.parkedSection(owner, d),
      ...(damage ? [el("div.dg-damage", { role: "alert" },
        el("strong", {}, "Damaged: "), damage, el("div.dg-muted", {}, DAMAGED_NOTE))] : []),
      ...(d.decide ? [this.decidePanel(owner, d)] : []),
      ...(unreadable ? [] : this.viewer(d)),
      el("div.dg-actions",
        el("label.dg-rename-row", {}, "Rename to ", renameInput),
        el("label.dg-check", {}, overwrite, " overwrite"),
        el("button.dg-btn.dg-rename", { type: "button", onclick: doRename }, "Rename")),
      el("div.dg-actions", ...(damage ? [removeButton] : [
        el("button.dg-btn.dg-verify", {
          type: "button", disabled: Boolean(d.check?.busy), onclick: () => this.on.verify(slot),
          title: "Read the whole file on the server and check its checksum",
        }, "Verify"),
        this.downloadLink(d),
        el("button.dg-btn.dg-pin", { type: "button", onclick: () => this.on.pin(owner.id, !owner.pinned) },
          owner.pinned ? "Unpin" : "Pin"),
        removeButton,
      ])),
      ...(d.check ? [el("div.dg-verify-status", { role: "status" }, d.check.text)] : []),
    ];
  }

  /** The batch image (or its mask) with the pager, and the facts of a slot whose header reads. */
  viewer(d) {
    const { slot, ref, index, layer } = d;
    const count = slot.batch;
    const layers = slot.mask_shape ? [el("div.dg-layers", { role: "group", "aria-label": "show" },
      ...[["image", "Image"], ["mask", "Mask"]].map(([name, label]) => el(`button.dg-btn.dg-layer${layer === name ? ".dg-current" : ""}`, {
        type: "button", dataset: { layer: name }, "aria-pressed": String(layer === name),
        onclick: () => this.on.showLayer(name),
      }, label)))] : [];
    const pager = el("div.dg-pager",
      el("button.dg-btn.dg-prev", { type: "button", disabled: index <= 0, onclick: () => this.on.page(-1) }, "◀"),
      el("span.dg-page-label", {}, `${index + 1} / ${count}`),
      el("button.dg-btn.dg-next", { type: "button", disabled: index >= count - 1, onclick: () => this.on.page(1) }, "▶"),
      ...layers);
    const latentDims = { 3: "C,H,W", 4: "B,C,H,W", 5: "B,C,T,H,W" };
    const rows = [
      ["picture", `${sizeText(slot.image_shape)} px (width × height) · batch ${slot.batch} · ${slot.image_shape[3]} channels`],
      ["tensor", tensorText(slot.image_shape, slot.image_dtype)],
      ["mask", slot.mask_shape ? tensorText(slot.mask_shape, slot.mask_dtype) : "none"],
      ["latent", slot.latent_shape ? tensorText(slot.latent_shape, slot.latent_dtype, latentDims) : "none"],
      ["size", `${humanBytes(slot.bytes)} (${slot.bytes} bytes)`], ["created", `${when(slot.created)} (${age(slot.created)})`],
      ["checksum", slot.checksum || "-"],
      ...(slot.versions > 1 ? [["versions", `${slot.versions} kept (older ones load as ${slot.id}@-1, @-2, …)`]] : []),
      ...(slot.version ? [["showing", `${ref}: get_id "${ref}" resumes from this version`]] : []),
      ["pinned", slot.pinned ? "yes: never pruned by the bus quota" : "no"],
      ["meta", metaText(slot.meta)],
    ];
    return [
      el("div.dg-viewer", {}, el(`img.dg-detail-img${layer === "mask" ? ".dg-detail-mask" : ""}`, {
        alt: `${ref} ${layer} ${index + 1}`, src: d.imageUrl,
      })),
      pager,
      el("table.dg-facts", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))),
    ];
  }

  /**
   * Download tensors: the file is checked first, since a failed download's error never reaches
   * the page; once it holds, the same link is followed.
   */
  downloadLink(d) {
    const link = el("a.dg-btn.dg-download", {
      href: d.tensorsUrl, download: `${d.ref.replace("@", "_")}.safetensors`,
      onclick: (event) => {
        if (link.dataset.checked) {
          delete link.dataset.checked; // checked: the browser follows the link
          return;
        }
        event.preventDefault();
        this.on.download(d.slot).then((ok) => {
          const current = this.detail.querySelector(".dg-download"); // drawn anew meanwhile
          if (!ok || current?.getAttribute("href") !== d.tensorsUrl) return;
          current.dataset.checked = "1";
          current.click();
        });
      },
    }, "Download tensors");
    return link;
  }

  /** A parked slot: which gate and worker parked it and when, and Resume on the target chosen
   *  (this ComfyUI inside ComfyUI, each worker the server lists) or why not; Resume asks first
   *  (inside ComfyUI saying which nodes it will run). "Decide here…" opens decidePanel. */
  parkedSection(slot, d) {
    const { run, canResume, plan, targets, target, workersNote, decide } = d;
    const runStatus = () => el(`div.dg-resume-status${run.error ? ".dg-error" : ""}`, { role: "status" }, run.text);
    if (!isParked(slot)) {
      // Answered since: the slot holds the decision now; the resumed prompt is still followed.
      return run ? [runStatus()] : [];
    }
    const meta = slot.meta;
    const where = [meta.node ? `gate ${meta.node}` : "a gate", meta.prompt_id ? `of prompt ${meta.prompt_id}` : ""]
      .filter(Boolean).join(" ");
    const by = parkedBy(slot);
    const parts = [el("span.dg-parked-badge", {}, "parked"),
      el("span", {}, `by ${where}${by ? ` on ${by}` : ""} when its countdown ran out,`),
      el("span.dg-parked-when", { title: when(slot.created) }, `${age(slot.created)} · batch of ${slot.batch}`)];
    if (!meta.prompt) {
      // The server keeps no prompt too large for the slot header: nothing to queue again.
      return [el("div.dg-parked-box", {}, el("div.dg-parked-row", {}, ...parts),
        el("div.dg-muted.dg-resume-note", {}, `Its prompt was too large to keep: load it with get_id "${slot.id}" `
          + "in the workflow instead."))];
    }
    const rows = [el("div.dg-parked-row", {}, ...parts)];
    if (targets.length) {
      const here = target === "";
      const resume = () => {
        const what = here ? `${plan.text}.\n\nQueue them in this tab?`
          : `Queue the parked run on ${target}? That worker checks its seal, then its gate pauses there.`;
        if (window.confirm(what)) this.on.resume(slot.id);
      };
      const chooser = el("select.dg-resume-target", {
        "aria-label": "Resume on", title: "Where Resume queues the run: this ComfyUI or a worker of DATASET_GATES_WORKERS",
        onchange: (e) => this.on.setTarget(e.target.value),
      }, ...targets.map((t) => el("option", { value: t.value, selected: t.value === target }, t.label)));
      rows.push(el("div.dg-parked-row.dg-resume-row", {},
        el("label.dg-resume-on", {}, "Resume on ", chooser), el("span.dg-grow"),
        el("button.dg-btn.dg-primary.dg-resume", {
          type: "button", disabled: Boolean(run?.busy) || (here && !plan?.ready),
          title: here ? "Queue its prompt again in this tab: the gate pauses on this batch with its recorded routes"
            : `Queue its prompt on ${target}: the gate pauses there on this batch`,
          onclick: resume,
        }, "▶ Resume"),
        decide ? null : el("button.dg-btn.dg-decide", {
          type: "button", disabled: Boolean(run?.busy),
          title: "Give each image of the batch its route here, then resume: the run goes on without pausing",
          onclick: () => this.on.decideHere(true),
        }, "Decide here…")));
    } else if (!workersNote) {
      rows.push(el("div.dg-muted.dg-resume-note", {}, canResume ? "" : RESUME_NEEDS_COMFYUI, " ", WORKERS_HINT));
    }
    if (workersNote) rows.push(el(`div.dg-workers-note${workersNote.startsWith("Could not") ? ".dg-error" : ".dg-muted"}`, {}, workersNote));
    if (plan && (target === "" || plan.refused)) {
      rows.push(el(`div.dg-resume-plan${plan.refused ? ".dg-error" : ".dg-muted"}`, {}, plan.text));
    }
    if (run) rows.push(runStatus());
    return [el("div.dg-parked-box", {}, ...rows)];
  }

  /** "Decide here": the batch's images, each with the route it goes down, the route buttons
   *  (labels as the gate names them) for the image on screen, and Resume with these decisions. */
  decidePanel(slot, d) {
    const { decide, index, batchUrls, target, run } = d;
    const rows = [el("div.dg-parked-row", {}, el("strong", {}, "Decide here"), el("span.dg-grow"),
      el("button.dg-btn.dg-decide-cancel", { type: "button", onclick: () => this.on.decideHere(false) }, "Cancel"))];
    rows.push(el("div.dg-muted.dg-decide-note", {}, DECIDE_NOTE));
    if (decide.count) {
      rows.push(el("div.dg-decide-images", { role: "group", "aria-label": "batch images" },
        ...batchUrls.map((url, i) => el(`button.dg-decide-image${i === index ? ".dg-current" : ""}`, {
          type: "button", dataset: { index: String(i), route: String(decide.routes[i]) },
          title: `Image ${i + 1}: ${routeTitle(decide.labels, decide.routes[i])}`,
          "aria-pressed": String(i === index), onclick: () => this.on.showImage(i),
        }, el("img.dg-decide-thumb", { src: url, alt: `image ${i + 1}`, loading: "lazy", decoding: "async" }),
        el("span.dg-decide-route", {}, `${i + 1} → ${routeTitle(decide.labels, decide.routes[i])}`)))));
      rows.push(el("div.dg-decide-routes", { role: "group", "aria-label": `route of image ${index + 1}` },
        el("span.dg-muted", {}, `Image ${index + 1} goes down: `),
        ...Array.from({ length: decide.count }, (_, i) => i + 1).map((route) => el(
          `button.dg-btn.dg-route${decide.routes[index] === route ? ".dg-current" : ""}`, {
            type: "button", dataset: { route: String(route) }, "aria-pressed": String(decide.routes[index] === route),
            title: `Image ${index + 1} down ${routeTitle(decide.labels, route)} (key ${route === 10 ? 0 : route})`,
            onclick: () => this.on.routeKey(route),
          }, el("kbd.dg-key", {}, route === 10 ? "0" : String(route)), ` ${labelOf(decide.labels, route) || `route ${route}`}`))));
      rows.push(el("div.dg-decide-summary", {}, decide.summary));
    }
    if (decide.error) rows.push(el("div.dg-error.dg-decide-error", { role: "alert" }, decide.error));
    const send = () => {
      const where = target ? `on ${target}` : "in this ComfyUI";
      if (window.confirm(`Resume ${slot.id} ${where} with these decisions (${decide.summary})? `
        + "The run goes on without pausing.")) this.on.resume(slot.id, { decided: true });
    };
    rows.push(el("div.dg-parked-row", {}, el("button.dg-btn.dg-primary.dg-resume-decided", {
      type: "button", disabled: Boolean(decide.error) || target === null || Boolean(run?.busy)
        || (target === "" && !d.plan?.ready),
      onclick: send,
    }, "▶ Resume with these decisions"), target === null ? el("span.dg-muted", {}, "No ComfyUI to resume on.") : null));
    return el("div.dg-parked-box.dg-decide-panel", {}, ...rows);
  }

  onKey(event) {
    if (!this.model?.detail || event.target.closest("input, textarea, select")) return;
    const actions = {
      ArrowLeft: () => this.on.page(-1), ArrowRight: () => this.on.page(1),
      Escape: () => (this.model.detail.decide ? this.on.decideHere(false) : this.on.back()), // deciding: cancel it first
    };
    let act = actions[event.key];
    if (this.model.detail.decide?.count && /^[0-9]$/.test(event.key) && !event.ctrlKey && !event.metaKey && !event.altKey) {
      const route = event.key === "0" ? 10 : Number(event.key);
      if (route <= this.model.detail.decide.count) act = () => this.on.routeKey(route);
    }
    if (!act) return;
    event.preventDefault();
    event.stopPropagation();
    act();
  }
}

/**
 * Render the browser into `root`.
 * @param {HTMLElement} root
 * @param {{bus?: object, resume?: (id: string, options?: {routes?: number[]}) => Promise<{prompt_id: string}>,
 *   promptState?: (promptId: string) => Promise<string>}} options
 *   bus: the bus's routes (busApi, web/gate_api.js) on the server's HTTP client: on
 *   fetchClient("") on the standalone page (the default), comfy_api.js's `comfyBus` inside
 *   ComfyUI. resume / promptState: see SlotBrowserModel.
 * @returns {{refresh: () => Promise<void>, destroy: () => void}}
 */
export function mountBrowser(root, options = {}) {
  ensureStylesheet("browser", new URL("./browser.css", import.meta.url));
  ensureStylesheet("dataset", new URL("../dataset.css", import.meta.url));
  const model = new SlotBrowserModel({ ...options, onChange: () => view.render(model.view()) });
  const view = new SlotBrowserView({
    refresh: () => model.refresh(),
    filter: (text) => model.setFilter(text),
    more: () => model.showMore(),
    open: (slot) => model.openSlot(slot, 0),
    back: () => model.back(),
    page: (step) => model.page(step),
    showVersion: (version) => model.showVersion(version),
    showLayer: (layer) => model.showLayer(layer),
    verify: (slot) => model.verify(slot),
    download: (slot) => model.download(slot),
    rename: (id, to, overwrite) => model.rename(id, to, overwrite),
    pin: (id, pinned) => model.pin(id, pinned),
    remove: (id) => model.remove(id),
    resume: (id, options) => model.resume(id, options),
    parkedOnly: (only) => model.showParkedOnly(only),
    setTarget: (value) => model.setTarget(value),
    decideHere: (on) => model.decideHere(on),
    showImage: (index) => model.showImage(index),
    routeKey: (route) => model.routeKey(route),
    showDatasets: (open) => model.showDatasets(open),
    refreshDatasets: () => model.refreshDatasets(),
    askDataset: (folder, depth) => model.askDataset(folder, depth),
  });
  root.replaceChildren(view.element);
  model.refresh();
  return {
    refresh: () => model.refresh(),
    destroy() {
      model.destroy();
      root.replaceChildren();
    },
  };
}
