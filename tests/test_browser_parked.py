"""Parked runs on a farm in the slot browser (web/browser/slot_model.js, slot_browser.js), in
headless Chromium.

The model's pure functions (a parked run's gate read from its meta, a decision checked and
summed up) and the model on stand-in clients (a recording bus, a recording ComfyUI `resume`)
run in the standalone server's page, as tests/test_web_datasets.py does: which targets Resume
offers, the request each one sends (with or without `worker`, with `routes`), refusals shown as
text. Then the real page against `gates serve` with DATASET_GATES_WORKERS naming a stand-in
worker and a worker nobody runs: the parked-runs filter, "parked by", the worker chooser,
deciding the batch with keys and buttons, and a 502 as a message. Waits are on the page's
state, never on time. Needs Chromium and playwright (skips without them, fails in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_browser_page import answer_dialogs, blank, blank_page, chromium, harness_fixture, open_slot  # noqa: F401
from test_workers import stand_in_worker

from gates.bus.local.store import SlotStore
from gates.http.app import serving
from gates.http.workers import ENV_VAR

pytestmark = pytest.mark.browser

P = "/datasete_gate"
GATE_PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
    "2": {"class_type": "ImageGate", "inputs": {"routes": 3, "labels": "keep, ,fix", "image": ["1", 0]}},
}


def parked_meta(worker: str | None = "gpu-2:8188") -> dict:
    meta = {"parked": True, "prompt": GATE_PROMPT, "node": "2", "prompt_id": "abc", "source": "input"}
    return meta | ({"worker": worker} if worker else {})


# window.dg: the model's module; `make(options)`, a model on a bus that records what it is
# asked (`sent`) and answers from `replies` (an Error rejects), with `local` as ComfyUI's resume
# when options.inComfy; `settle()` waits for the model's requests to land.
HARNESS = """
async () => {
  const mod = await import('/web/browser/slot_model.js');
  const { HttpError } = await import('/web/http.js');
  const sent = [];
  const replies = { workers: [], resume: { prompt_id: 'w-1' }, local: { prompt_id: 'c-1' }, plan: null };
  const answer = async (name) => {
    const reply = replies[name];
    if (reply instanceof Error) throw reply;
    return structuredClone(reply);
  };
  const slots = [];
  const bus = {
    listIfChanged: async () => ({ bus: 'farm', slots: structuredClone(slots), etag: String(Math.random()) }),
    thumbUrl: (s) => `/thumb/${s.id}`,
    imageUrl: (ref, i, v) => `/image/${ref}/${i}?v=${v}`,
    maskUrl: () => '', tensorsUrl: () => '',
    workers: async () => { sent.push(['workers']); return answer('workers'); },
    resume: async (id, options) => { sent.push(['bus.resume', id, options]); return answer('resume'); },
    resumePlan: async (id) => {
      sent.push(['plan', id]);
      if (replies.plan instanceof Error) throw replies.plan;
      return replies.plan ?? { slot: id, count: 2, nodes: [{ class_type: 'ImageGate', count: 1 }] };
    },
  };
  const local = async (id, options) => { sent.push(['local.resume', id, options]); return answer('local'); };
  const make = async ({ inComfy = false } = {}) => {
    const model = new mod.SlotBrowserModel({ bus, storage: null, ...(inComfy ? { resume: local, promptState: async () => 'queued' } : {}) });
    await model.refresh();
    await new Promise((r) => setTimeout(r, 0));
    return model;
  };
  const settle = () => new Promise((r) => setTimeout(r, 0));
  window.dg = { ...mod, HttpError, sent, replies, slots, make, settle };
}
"""
harness = harness_fixture(HARNESS)


def test_a_parked_runs_gate_and_a_decision_are_read_as_the_server_reads_them(harness) -> None:
    got = harness.evaluate(
        """(meta) => ({
      gate: dg.gateRoutes({ meta }),
      wired: dg.gateRoutes({ meta: { ...meta, prompt: { 2: { inputs: { routes: ['1', 0] } } } } }),
      none: dg.gateRoutes({}),
      labels: dg.parseLabels('a\\nb, , c', 4),
      ok: dg.decisionError([1, 3, 2], 3, 3),
      short: dg.decisionError([1, 2], 3, 3),
      outside: dg.decisionError([1, 4, 2], 3, 3),
      summary: dg.decisionText([1, 3, 1, 2], ['keep', '2', 'fix']),
      by: [dg.parkedBy({ meta }), dg.parkedBy({ meta: { worker: 5 } })],
      isWorker: [dg.isWorker('http://gpu-2:8188', 'gpu-2:8188'), dg.isWorker('http://gpu-3:8188', 'gpu-2:8188'),
        dg.isWorker('http://gpu-2:8188', '')],
    })""",
        parked_meta(),
    )
    assert got["gate"] == {"routes": 3, "labels": ["keep", "2", "fix"]}
    assert got["wired"] == got["none"] == {"routes": None, "labels": []}
    assert got["labels"] == ["a", "b", "3", "c"]
    assert got["ok"] == ""
    assert got["short"] == "Give each of the 3 images a route."
    assert got["outside"] == "Image 2 has no route of 1 to 3."
    assert got["summary"] == "route 1 · keep: 2 images, route 2: 1 image, route 3 · fix: 1 image"
    assert got["by"] == ["gpu-2:8188", ""]
    assert got["isWorker"] == [True, False, False]


def test_the_parked_runs_are_listed_with_the_worker_that_parked_each(harness) -> None:
    got = harness.evaluate(
        """async (metas) => {
      dg.slots.push({ id: 'plain', batch: 1, meta: {} }, { id: 'p1', batch: 2, meta: metas[0] },
        { id: 'p2', batch: 1, meta: metas[1] });
      const m = await dg.make();
      const all = m.view();
      m.showParkedOnly(true);
      const only = m.view();
      return {
        parked: all.parked, onlyParked: only.parked,
        all: all.grid.cards.map((c) => [c.slot.id, c.parkedBy]),
        only: only.grid.cards.map((c) => [c.slot.id, c.parkedBy]),
        sent: dg.sent.splice(0),
      };
    }""",
        [parked_meta(), parked_meta(worker=None)],
    )
    assert got["parked"] == {"count": 2, "only": False} and got["onlyParked"] == {"count": 2, "only": True}
    assert got["all"] == [["plain", ""], ["p1", "gpu-2:8188"], ["p2", ""]]
    assert got["only"] == [["p1", "gpu-2:8188"], ["p2", ""]]
    assert got["sent"] == [["workers"]]  # asked once, because parked runs are listed


def test_resume_on_a_worker_sends_it_and_the_decided_routes_and_never_polls_it(harness) -> None:
    got = harness.evaluate(
        """async (meta) => {
      dg.slots.push({ id: 'p1', batch: 3, checksum: 'c', meta });
      dg.replies.workers = ['http://gpu-1:8188', 'http://gpu-2:8188'];
      const m = await dg.make();  // the standalone page: no queue here
      m.openSlot(m.slots[0], 0);
      const first = m.detail();
      const out = { targets: first.targets, target: first.target, canResume: first.canResume };
      await m.resume('p1');
      out.plain = m.detail().run;
      m.decideHere(true);
      out.urls = m.detail().batchUrls;
      m.routeKey(3);  // image 1 down route 3, image 2 shows
      out.index = m.index;
      m.setRoute(2, 2);
      m.setRoute(2, 4);  // no route 4: ignored
      out.decide = m.detail().decide;
      m.setTarget('http://gpu-1:8188');
      await m.resume('p1', { decided: true });
      out.decided = m.detail().run;
      out.after = m.detail().decide;
      out.sent = dg.sent.splice(0);
      out.polling = m.polling;
      dg.slots[0].created = 99;  // parked again since: a new version may be resumed
      await m.refresh();
      out.reparked = m.detail().run.busy;
      return out;
    }""",
        parked_meta(),
    )
    assert got["canResume"] is False
    assert got["targets"] == [
        {"value": "http://gpu-1:8188", "label": "http://gpu-1:8188"},
        {"value": "http://gpu-2:8188", "label": "http://gpu-2:8188 (parked it)"},
    ]
    assert got["target"] == "http://gpu-2:8188"  # the worker that parked it, by default
    # busy: Resume stays off, as a second one would queue the run twice on the worker
    assert got["plain"] == {"text": "Queued on http://gpu-2:8188 as prompt w-1", "error": False, "busy": True}
    assert got["urls"] == ["/image/p1/0?v=c", "/image/p1/1?v=c", "/image/p1/2?v=c"]
    assert got["index"] == 1
    assert got["decide"] == {
        "batch": 3,
        "count": 3,
        "labels": ["keep", "2", "fix"],
        "routes": [3, 1, 2],  # image 2 left alone: route 1, as at the pause
        "summary": "route 1 · keep: 1 image, route 2: 1 image, route 3 · fix: 1 image",
        "error": "",
    }
    assert got["decided"]["text"] == "Queued on http://gpu-1:8188 as prompt w-1 with the routes decided here"
    assert got["after"] is None  # sent: the decision is done
    assert got["sent"] == [
        ["workers"],
        ["bus.resume", "p1", {"worker": "http://gpu-2:8188"}],
        ["bus.resume", "p1", {"routes": [3, 1, 2], "created": None, "worker": "http://gpu-1:8188"}],
    ]
    assert got["polling"] is None  # another worker's prompt is not followed here
    assert got["reparked"] is False


def test_inside_comfyui_resume_queues_here_with_or_without_routes_and_a_refusal_is_text(harness) -> None:
    got = harness.evaluate(
        """async (meta) => {
      dg.slots.push({ id: 'p1', batch: 2, checksum: 'c', meta });
      dg.replies.workers = ['http://gpu-2:8188'];
      dg.replies.plan = { slot: 'p1', count: 2, nodes: [], routes: 2, labels: ['yes', 'no'], batch: 2, worker: 'gpu-2:8188' };
      const m = await dg.make({ inComfy: true });
      m.openSlot(m.slots[0], 0);
      await dg.settle();
      const out = { targets: m.detail().targets.map((t) => t.value), target: m.detail().target };
      m.decideHere(true);
      out.gate = [m.detail().decide.count, m.detail().decide.labels];  // the sealed plan's, not the meta's 3
      m.routeKey(2);
      m.routeKey(2);
      await m.resume('p1', { decided: true });
      out.local = m.detail().run.text;
      m.destroy();
      m.setTarget('http://gpu-2:8188');
      dg.replies.resume = new dg.HttpError('http://gpu-2:8188 did not answer (ClientConnectorError): is it running?', 502);
      await m.resume('p1');
      out.unreachable = m.detail().run;
      dg.replies.resume = new dg.HttpError("'http://x' is not one of the workers this server may resume on", 400);
      await m.resume('p1');
      out.unlisted = m.detail().run.text;
      out.sent = dg.sent.splice(0);
      return out;
    }""",
        parked_meta(),
    )
    assert got["targets"] == ["", "http://gpu-2:8188"] and got["target"] == ""  # this ComfyUI first
    assert got["gate"] == [2, ["yes", "no"]]
    assert got["local"] == "Resumed as prompt c-1 with the routes decided here: queued"
    assert got["unreachable"] == {
        "text": "Resume on http://gpu-2:8188 failed: http://gpu-2:8188 did not answer (ClientConnectorError): is it running?",
        "error": True,
        "busy": False,
    }
    assert got["unlisted"].startswith("Resume on http://gpu-2:8188 failed: 'http://x' is not one of the workers")
    assert got["sent"] == [
        ["workers"],
        ["plan", "p1"],
        ["local.resume", "p1", {"routes": [2, 2], "created": None}],
        ["bus.resume", "p1", {"worker": "http://gpu-2:8188"}],
        ["bus.resume", "p1", {"worker": "http://gpu-2:8188"}],
    ]


def test_a_refused_plan_leaves_only_the_workers_and_a_failed_worker_list_is_text(harness) -> None:
    got = harness.evaluate(
        """async (meta) => {
      dg.slots.push({ id: 'p1', batch: 1, meta });
      dg.replies.plan = new dg.HttpError('not parked here: refused', 403);
      dg.replies.workers = new dg.HttpError('the server is gone', 0);
      const m = await dg.make({ inComfy: true });
      m.openSlot(m.slots[0], 0);
      await dg.settle();
      const out = { none: [m.detail().targets, m.detail().target, m.detail().workersNote] };
      dg.replies.workers = ['http://gpu-2:8188'];
      await m.loadWorkers();
      out.after = [m.detail().targets.map((t) => t.value), m.detail().target, m.detail().workersNote];
      await m.resume('p1', { decided: true });  // not deciding: nothing is sent
      out.message = m.message;
      out.sent = dg.sent.filter((s) => s[0].endsWith('resume'));
      return out;
    }""",
        parked_meta(),
    )
    assert got["none"] == [[], None, "Could not list the farm's workers: the server is gone"]
    assert got["after"] == [["http://gpu-2:8188"], "http://gpu-2:8188", ""]
    assert got["message"]["isError"] and got["message"]["text"] == "Decide the batch first."
    assert got["sent"] == []


# -- the real page on `gates serve`, with a farm of a stand-in worker and a gone one -----------
@pytest.fixture
def farm(tmp_path: Path, monkeypatch) -> Iterator[tuple[Path, str, list]]:
    """A bus with a plain slot and a run gpu-2 parked (batch 3), and DATASET_GATES_WORKERS naming
    a stand-in worker that records what it is asked to resume and a worker nobody runs."""
    bus = tmp_path / "bus"
    store = SlotStore(bus)
    store.publish("plain", torch.rand(1, 8, 8, 3))
    colours = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9]])
    store.publish("parked-abc-2", colours[:, None, None, :].expand(3, 24, 32, 3).contiguous(), meta=parked_meta())
    app, asked = stand_in_worker("on-gpu-2")
    with serving(app) as (host, port):
        worker = f"http://{host}:{port}"
        monkeypatch.setenv(ENV_VAR, f"{worker} http://127.0.0.1:1")
        yield bus, worker, asked


def test_the_page_lists_parked_runs_and_resumes_a_batch_decided_here_on_a_worker(chromium, farm) -> None:
    bus, worker, asked = farm
    with blank_page(chromium, bus, viewport={"width": 1100, "height": 900}) as page:
        page.wait_for_selector(".dg-card[data-slot-id='plain']")
        page.click(".dg-parked-filter")
        page.wait_for_function("() => document.querySelectorAll('.dg-card').length === 1")
        assert page.get_attribute(".dg-parked-filter", "aria-pressed") == "true"
        assert page.inner_text(".dg-parked-filter") == "Parked runs (1)"
        assert "parked by gpu-2:8188" in page.inner_text(".dg-card[data-slot-id='parked-abc-2']")
        open_slot(page, "parked-abc-2")
        page.wait_for_selector(".dg-resume-target")
        box = page.inner_text(".dg-parked-box")
        assert "by gate 2 of prompt abc on gpu-2:8188 when its countdown ran out" in box and "batch of 3" in box
        options = page.eval_on_selector_all(".dg-resume-target option", "os => os.map((o) => [o.value, o.textContent])")
        assert options == [[worker, worker], ["http://127.0.0.1:1", "http://127.0.0.1:1"]]  # no "this ComfyUI" here
        # The worker nobody runs first: its 502 is a message in the box, and nothing throws.
        answer_dialogs(page, True)
        page.select_option(".dg-resume-target", "http://127.0.0.1:1")
        page.wait_for_function("() => document.querySelector('.dg-resume-target').value === 'http://127.0.0.1:1'")
        page.click(".dg-resume")
        page.wait_for_selector(".dg-resume-status.dg-error")
        text = page.inner_text(".dg-resume-status")
        assert text.startswith("Resume on http://127.0.0.1:1 failed: http://127.0.0.1:1 did not answer"), text
        assert asked == []
        # Then the batch decided here, on the stand-in worker.
        page.select_option(".dg-resume-target", worker)
        page.wait_for_function("w => document.querySelector('.dg-resume-target').value === w", arg=worker)
        page.click(".dg-decide")
        page.wait_for_selector(".dg-decide-image[data-index='2']")
        assert "An image you leave goes down route 1" in page.inner_text(".dg-decide-note")
        assert page.eval_on_selector_all(".dg-decide-routes .dg-route", "bs => bs.map((b) => b.textContent)") == [
            "1 keep",
            "2 route 2",
            "3 fix",
        ]
        page.keyboard.press("3")  # image 1 down route 3; image 2 shows
        page.wait_for_selector(".dg-decide-image.dg-current[data-index='1']")
        page.click(".dg-decide-image[data-index='2']")
        page.wait_for_selector(".dg-decide-image.dg-current[data-index='2']")
        page.click(".dg-decide-routes .dg-route[data-route='2']")
        page.wait_for_selector(".dg-decide-image[data-index='2'][data-route='2']")
        routes = page.eval_on_selector_all(".dg-decide-image", "bs => bs.map((b) => b.dataset.route)")
        assert routes == ["3", "1", "2"]
        messages: list[str] = []
        page.on("dialog", lambda dialog: messages.append(dialog.message))
        page.click(".dg-resume-decided")
        page.wait_for_selector(".dg-resume-status:not(.dg-error)")
        page.wait_for_function("() => !document.querySelector('.dg-resume-status').textContent.includes('…')")
        # the routes, and the version they were decided on: the worker refuses them for a newer one
        assert asked == [
            ("parked-abc-2", {"routes": [3, 1, 2], "created": SlotStore(bus).info("parked-abc-2").created})
        ]
        assert "with these decisions" in messages[0] and "route 3 · fix: 1 image" in messages[0]
        assert (
            page.inner_text(".dg-resume-status")
            == f"Queued on {worker} as prompt on-gpu-2 with the routes decided here"
        )
        assert page.locator(".dg-decide-panel").count() == 0  # sent: the decision is done
        assert page.is_disabled(".dg-resume")  # queued there: a second Resume would queue it twice


def test_the_page_without_workers_says_resume_needs_comfyui_or_the_setting(
    chromium, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    bus = tmp_path / "bus"
    SlotStore(bus).publish("parked-abc-2", torch.rand(2, 8, 8, 3), meta=parked_meta(worker=None))
    with blank_page(chromium, bus) as page:
        open_slot(page, "parked-abc-2")
        page.wait_for_selector(".dg-resume-note")
        note = page.inner_text(".dg-resume-note")
        assert "Resume needs ComfyUI" in note and "DATASET_GATES_WORKERS" in note
        assert page.locator(".dg-resume, .dg-decide, .dg-resume-target").count() == 0
