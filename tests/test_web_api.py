"""The pack's routes as calls on a client (web/gate_api.js: busApi, gateApi) in headless Chromium.

gate_api.js imports nothing from ComfyUI (comfy_api.js binds it to api.fetchApi inside ComfyUI),
so it runs in the standalone slot browser's server, which serves web/ at /web/, as
tests/test_web_http.py does for http.js. The client here is a stand-in that records every call
and answers from a table: each request must go through it, and each URL must be its `url()`.
Needs Chromium and playwright (skips without them, fails in CI).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from dataset_files import decided_set
from test_browser_page import blank, chromium, harness_fixture  # noqa: F401 - the shared fixtures

from gates.bus.local.store import SlotStore
from gates.dataset.report import RECENT
from gates.dataset.roots import ENV_VAR

pytestmark = pytest.mark.browser


# window.dg: a client that records [method, path, body] and answers by path prefix, and a
# `failure` helper that turns a rejection into [name, status, message].
HARNESS = """
async () => {
  const { busApi, gateApi, pauseKey } = await import('/web/gate_api.js');
  const sent = [];
  const replies = {};
  const answer = (path) => {
    const key = Object.keys(replies).find((k) => path.startsWith(k));
    return key ? structuredClone(replies[key]) : {};
  };
  const record = (method) => async (path, body) => {
    sent.push([method, path, body instanceof FormData ? [...body.entries()].map(([k, v]) => [k, typeof v === 'string' ? v : v.name]) : body ?? null]);
    return answer(path);
  };
  const client = {
    url: (path) => `/base${path}`,
    get: record('GET'), postJson: record('POST'), postForm: record('FORM'), delete: record('DELETE'),
  };
  const failure = (promise) => promise.then(() => 'resolved', (err) => [err.name, err.status, err.message]);
  window.dg = { busApi, gateApi, pauseKey, client, sent, replies, failure };
}
"""
api = harness_fixture(HARNESS)


def test_bus_api_builds_every_bus_request_on_the_client_it_is_given(api) -> None:
    got = api.evaluate("""async () => {
      const { busApi, client, sent, replies } = window.dg;
      let id = 'tab-1';
      const bus = busApi(client, () => id);
      replies['/datasete_gate/bus/list'] = { bus: 'gate_bus', ids: ['a'], slots: [{ id: 'a', thumb_url: '/datasete_gate/bus/thumb/a?v=7' }] };
      replies['/datasete_gate/bus/history/'] = { versions: [{ ref: 'a@-1' }] };
      const out = {
        list: await bus.list(),
        info: await bus.info('a b@-1'),
        history: await bus.history('a/b'),
        pin: await bus.pin('a', true),
        rename: await bus.rename('a', 'c', false),
        deleted: await bus.delete('c?x'),
        policy: await bus.policy(),
        setPolicy: await bus.setPolicy({ keep: 3 }),
        plan: await bus.resumePlan('gate_5 x'),
        resume: await bus.resume('gate_5 x'),
        verify: await bus.verify('a b@-1'),
        urls: {
          thumb: bus.thumbUrl({ thumb_url: '/datasete_gate/bus/thumb/a?v=7' }),
          image: bus.imageUrl('a@-1', 2, 'abc123'),
          imageNoChecksum: bus.imageUrl('a', 0),
          tensors: bus.tensorsUrl('a b@-2'),
          mask: bus.maskUrl('a@-1', 2, 'abc123'),
        },
      };
      out.sent = sent.splice(0);
      return out;
    }""")
    assert got["list"] == {"bus": "gate_bus", "slots": [{"id": "a", "thumb_url": "/datasete_gate/bus/thumb/a?v=7"}]}
    assert got["history"] == [{"ref": "a@-1"}]
    assert got["sent"] == [
        ["GET", "/datasete_gate/bus/list", None],
        ["GET", "/datasete_gate/bus/info/a%20b%40-1", None],
        ["GET", "/datasete_gate/bus/history/a%2Fb", None],
        ["POST", "/datasete_gate/bus/a/pin", {"pinned": True}],
        ["POST", "/datasete_gate/bus/a/rename", {"to": "c", "overwrite": False}],
        ["DELETE", "/datasete_gate/bus/c%3Fx", None],
        ["GET", "/datasete_gate/bus/policy", None],
        ["POST", "/datasete_gate/bus/policy", {"keep": 3}],
        ["GET", "/datasete_gate/resume/gate_5%20x", None],
        ["POST", "/datasete_gate/resume/gate_5%20x", {"client_id": "tab-1"}],
        ["GET", "/datasete_gate/bus/verify/a%20b%40-1", None],
    ]
    # Every URL is the client's (its base), and the image's cache key is the checksum.
    assert got["urls"] == {
        "thumb": "/base/datasete_gate/bus/thumb/a?v=7",
        "image": "/base/datasete_gate/bus/image/a%40-1/2?v=abc123",
        "imageNoChecksum": "/base/datasete_gate/bus/image/a/0?v=",
        "tensors": "/base/datasete_gate/bus/tensors/a%20b%40-2",
        "mask": "/base/datasete_gate/bus/mask/a%40-1/2?v=abc123",
    }


def test_bus_api_reads_odd_replies_and_resumes_only_with_a_client_id(api) -> None:
    got = api.evaluate("""async () => {
      const { busApi, client, sent, replies, failure } = window.dg;
      replies['/datasete_gate/bus/list'] = { slots: 'not a list' };
      replies['/datasete_gate/bus/history/'] = {};
      const bus = busApi(client);  // the standalone page: no client id
      const out = { list: await bus.list(), history: await bus.history('a') };
      sent.splice(0);
      out.resume = await failure(bus.resume('a'));
      out.sentForResume = sent.splice(0);
      return out;
    }""")
    assert got["list"] == {"bus": "", "slots": []}
    assert got["history"] == []
    assert got["resume"] == ["HttpError", 0, "this tab's client id is not known yet"]
    assert got["sentForResume"] == []  # refused before anything was sent


def test_bus_api_resumes_here_or_on_a_worker_with_the_routes_decided(api) -> None:
    got = api.evaluate("""async () => {
      const { busApi, client, sent, replies, failure } = window.dg;
      replies['/datasete_gate/workers'] = { workers: ['http://gpu-2:8188', 5, ''] };
      const here = busApi(client, () => 'tab-1');
      const standalone = busApi(client);  // no client id: only a worker can queue
      const out = { workers: await here.workers() };
      await here.resume('p', { routes: [2, 1] });
      await here.resume('p', { worker: 'http://gpu-2:8188' });
      await standalone.resume('p', { worker: 'http://gpu-2:8188', routes: [1, 3], created: 12.5 });
      out.here = await failure(standalone.resume('p', { routes: [1] }));
      replies['/datasete_gate/workers'] = { workers: 'not a list' };
      out.odd = await here.workers();
      out.sent = sent.splice(0);
      return out;
    }""")
    assert got["workers"] == ["http://gpu-2:8188"] and got["odd"] == []
    assert got["here"] == ["HttpError", 0, "this tab's client id is not known yet"]
    assert got["sent"] == [
        ["GET", "/datasete_gate/workers", None],
        ["POST", "/datasete_gate/resume/p", {"client_id": "tab-1", "routes": [2, 1], "created": None}],
        ["POST", "/datasete_gate/resume/p", {"worker": "http://gpu-2:8188"}],
        ["POST", "/datasete_gate/resume/p", {"worker": "http://gpu-2:8188", "routes": [1, 3], "created": 12.5}],
        ["GET", "/datasete_gate/workers", None],
    ]


def test_bus_api_asks_for_dataset_reports_on_the_client(api) -> None:
    got = api.evaluate("""async () => {
      const { busApi, client, sent, replies } = window.dg;
      const bus = busApi(client);
      replies['/datasete_gate/dataset/recent'] = { datasets: [{ folder: '/d', progress: '0 / 1 decided' }] };
      const out = { recent: await bus.datasetRecent() };
      replies['/datasete_gate/dataset/recent'] = { datasets: 'not a list' };
      out.odd = await bus.datasetRecent();
      replies['/datasete_gate/dataset/report'] = { folder: '/d', total: 1 };
      out.report = await bus.datasetReport('/data/a b&c', 2);
      await bus.datasetReport('rel');
      out.sent = sent.splice(0);
      return out;
    }""")
    assert got["recent"] == [{"folder": "/d", "progress": "0 / 1 decided"}]
    assert got["odd"] == []
    assert got["report"] == {"folder": "/d", "total": 1}
    assert got["sent"] == [
        ["GET", "/datasete_gate/dataset/recent", None],
        ["GET", "/datasete_gate/dataset/recent", None],
        ["GET", "/datasete_gate/dataset/report?folder=%2Fdata%2Fa+b%26c&depth=2", None],
        ["GET", "/datasete_gate/dataset/report?folder=rel&depth=0", None],
    ]


def test_bus_api_dataset_reports_reach_the_standalone_servers_routes(blank, tmp_path: Path, monkeypatch) -> None:
    """datasetRecent and datasetReport on window.fetch against `gates serve`: a folder's report,
    the folders read lately (one gone since, which says why), and a refusal as an HttpError."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(RECENT, "_folders", OrderedDict())
    folder = decided_set(tmp_path / "set")
    RECENT.add(str(tmp_path / "gone"), 0)
    RECENT.add(str(folder), 0)
    got = blank.evaluate(
        """async ([folder, missing]) => {
      const { busApi } = await import('/web/gate_api.js');
      const { fetchClient } = await import('/web/http.js');
      const bus = busApi(fetchClient(''));
      const failure = (p) => p.then(() => 'resolved', (err) => [err.name, err.status, err.message]);
      return {
        report: await bus.datasetReport(folder, 1),
        recent: await bus.datasetRecent(),
        missing: await failure(bus.datasetReport(missing)),
      };
    }""",
        [str(folder), str(tmp_path / "nothing")],
    )
    assert got["report"]["folder"] == str(folder) and got["report"]["depth"] == 1
    assert got["report"]["progress"] == "2 / 3 decided: 1 keep · 1 drop"
    assert got["report"]["buckets"] == [{"bucket": "1024x704", "count": 1}]
    assert [r["folder"] for r in got["recent"]] == [str(folder), str(tmp_path / "gone")]
    assert "error" in got["recent"][1] and got["recent"][0]["total"] == 3
    assert got["missing"][:2] == ["HttpError", 400] and got["missing"][2]


def test_gate_api_sends_a_pauses_answers_on_the_client(api) -> None:
    got = api.evaluate("""async () => {
      const { gateApi, pauseKey, client, sent, replies, failure } = window.dg;
      let id = null;
      const gate = gateApi(client, () => id);
      const out = {
        preview: gate.previewUrl('12:5', 't&1', 3),
        thumb: gate.previewUrl('5', 't1', 0, 160),
        pendingWithoutId: await gate.pending(),
        takeOverWithoutId: await failure(gate.takeOver('5')),
      };
      out.sentWithoutId = sent.splice(0);
      id = 'tab-1';
      replies['/datasete_gate/pending'] = { pending: [{ node: '5', token: 't1' }] };
      out.pending = await gate.pending();
      await gate.choose('5', 't1', 2);
      await gate.chooseEach('5', 't1', [1, 2]);
      await gate.choose('5', 't1', 1, ['a', 'b\\nc']);
      await gate.chooseEach('5', 't1', [2, 1], ['a', '']);
      await gate.passText('9', 't2', 'a prompt');
      await gate.hold('5', 't1');
      await gate.stop('5', 't1');
      await gate.uploadMask('5', 't1', new Blob(['x']), 0);
      await gate.uploadMask('5', 't1', new Blob(['x']));
      await gate.clearMask('5', 't1');
      await gate.takeOver('5');
      out.sent = sent.splice(0);
      out.key = pauseKey({ node: '12:5', created: 17, token: 'ignored' });
      return out;
    }""")
    assert got["preview"] == "/base/datasete_gate/preview?node=12%3A5&token=t%261&index=3"
    assert got["thumb"] == "/base/datasete_gate/preview?node=5&token=t1&index=0&side=160"
    assert got["pendingWithoutId"] is None
    assert got["takeOverWithoutId"] == ["HttpError", 0, "this tab's client id is not known yet"]
    assert got["sentWithoutId"] == []
    assert got["pending"] == [{"node": "5", "token": "t1"}]
    assert got["sent"] == [
        ["GET", "/datasete_gate/pending?client_id=tab-1", None],
        ["POST", "/datasete_gate/choice", {"node": "5", "token": "t1", "route": 2}],
        ["POST", "/datasete_gate/choice", {"node": "5", "token": "t1", "routes": [1, 2]}],
        ["POST", "/datasete_gate/choice", {"node": "5", "token": "t1", "route": 1, "captions": ["a", "b\nc"]}],
        ["POST", "/datasete_gate/choice", {"node": "5", "token": "t1", "routes": [2, 1], "captions": ["a", ""]}],
        ["POST", "/datasete_gate/choice", {"node": "9", "token": "t2", "text": "a prompt"}],
        ["POST", "/datasete_gate/hold", {"node": "5", "token": "t1"}],
        ["POST", "/datasete_gate/cancel", {"node": "5", "token": "t1"}],
        ["FORM", "/datasete_gate/mask", [["node", "5"], ["token", "t1"], ["index", "0"], ["mask", "mask.png"]]],
        ["FORM", "/datasete_gate/mask", [["node", "5"], ["token", "t1"], ["mask", "mask.png"]]],
        ["FORM", "/datasete_gate/mask", [["node", "5"], ["token", "t1"], ["clear", "1"]]],
        ["POST", "/datasete_gate/takeover", {"node": "5", "client_id": "tab-1"}],
    ]
    assert got["key"] == "12:5@17"


def test_bus_api_on_window_fetch_reaches_the_standalone_servers_routes(blank, tmp_path: Path) -> None:
    """busApi on http.js's window.fetch client against `gates serve`: the requests the slot
    browser makes reach the server's routes (a wrong path would 404 here)."""
    SlotStore(tmp_path / "bus").publish("one", torch.rand(2, 8, 8, 3), torch.rand(2, 8, 8))
    got = blank.evaluate("""async () => {
      const { busApi } = await import('/web/gate_api.js');
      const { fetchClient } = await import('/web/http.js');
      const bus = busApi(fetchClient(''));
      const { slots } = await bus.list();
      const image = await fetch(bus.imageUrl('one', 1, slots[0].checksum));
      const thumb = await fetch(bus.thumbUrl(slots[0]));
      const tensors = await fetch(bus.tensorsUrl('one'));
      const mask = await fetch(bus.maskUrl('one', 1, slots[0].checksum));
      return {
        ids: slots.map((s) => s.id), info: (await bus.info('one')).id, history: (await bus.history('one')).length,
        pinned: (await bus.pin('one', true)).pinned, policy: (await bus.setPolicy({ keep: 4 })).keep,
        policyAgain: (await bus.policy()).keep,
        files: [image.status, image.headers.get('content-type'), thumb.status, tensors.status, mask.status],
        verified: await bus.verify('one'),
        renamed: (await bus.rename('one', 'two', false)).id, deleted: await bus.delete('two'),
      };
    }""")
    assert got["ids"] == ["one"] and got["info"] == "one" and got["history"] >= 1
    assert got["pinned"] is True and got["policy"] == got["policyAgain"] == 4
    assert got["files"] == [200, "image/png", 200, 200, 200]
    assert got["verified"] == {"ref": "one", "verified": True}
    assert got["renamed"] == "two" and got["deleted"] == {"deleted": "two"}
