"""web/http.js, the pack's one HTTP client, and the slot browser's model on it, in headless
Chromium.

http.js imports nothing from ComfyUI (gate_api.js binds it to api.fetchApi inside ComfyUI), so
it runs in the standalone slot browser's server, which serves web/ at /web/, as
tests/test_web_grid.py does for gate_grid.js. Needs Chromium and playwright (skips without
them, fails in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_browser_page import blank_page, chromium  # noqa: F401 - chromium: the shared fixture

from gates.bus.local.store import SlotStore

pytestmark = pytest.mark.browser


@pytest.fixture
def blank(chromium, tmp_path: Path) -> Iterator:
    bus = tmp_path / "bus"
    SlotStore(bus).publish("two", torch.rand(2, 8, 8, 3))
    with blank_page(chromium, bus) as page:
        yield page


# Every call of the client on the standalone server, each failure as {status, message, name}.
AGAINST_THE_SERVER = """
async () => {
  const { HttpError, fetchClient } = await import('/web/http.js');
  const client = fetchClient('');
  const failure = (promise) => promise.then(
    () => 'resolved',
    (err) => ({ status: err.status, message: err.message, name: err.name, typed: err instanceof HttpError }));
  const list = await client.get('/datasete_gate/bus/list');
  return {
    ids: list.slots.map((s) => s.id),
    missing: await failure(client.get('/datasete_gate/bus/info/nope')),
    badRename: await failure(client.postJson('/datasete_gate/bus/two/rename', { to: 'no spaces' })),
    renamed: (await client.postJson('/datasete_gate/bus/two/rename', { to: 'three' })).id,
    deleted: await client.delete('/datasete_gate/bus/three'),
    deletedAgain: await failure(client.delete('/datasete_gate/bus/three')),
    url: client.url('/datasete_gate/bus/thumb/two?v=1'),
  };
}
"""


def test_the_client_reads_json_and_turns_refusals_into_http_errors(blank, tmp_path: Path) -> None:
    got = blank.evaluate(AGAINST_THE_SERVER)
    assert got["ids"] == ["two"]
    assert got["missing"]["status"] == 404 and got["missing"]["typed"] and got["missing"]["name"] == "HttpError"
    assert "nope" in got["missing"]["message"]  # the server's own {error} text
    assert got["badRename"]["status"] == 400 and "invalid slot id 'no spaces'" in got["badRename"]["message"]
    assert got["renamed"] == "three"
    assert got["deleted"] == {"deleted": "three"}
    assert got["deletedAgain"]["status"] == 404
    assert got["url"] == "/datasete_gate/bus/thumb/two?v=1"
    assert not (tmp_path / "bus" / "two").exists() and not (tmp_path / "bus" / "three").exists()


# A transport that records what it is asked and answers from a table, as api.fetchApi would
# (the client must neither add a base of its own nor read a failed reply as data).
ON_A_TRANSPORT = """
async () => {
  const { httpClient } = await import('/web/http.js');
  const sent = [];
  const replies = {
    '/ok': () => new Response('{"a": NaN, "b": "NaN", "c": [Infinity]}', { status: 200 }),
    '/plain-error': () => new Response('<html>boom</html>', { status: 502, statusText: 'Bad Gateway' }),
    '/json-error': () => Response.json({ error: 'that pause is over' }, { status: 409 }),
  };
  const client = httpClient({
    fetch: async (path, init) => {
      sent.push({ path, method: init.method ?? 'GET', cache: init.cache,
                  type: init.headers?.['Content-Type'] ?? null, body: typeof init.body === 'string' ? init.body : null,
                  form: init.body instanceof FormData ? [...init.body.keys()] : null });
      return replies[path]();
    },
    url: (path) => `/base/api${path}`,
  });
  const failure = (promise) => promise.then(() => 'resolved', (err) => [err.status, err.message]);
  const form = new FormData();
  form.append('node', '5');
  return {
    lenient: await client.get('/ok'),
    posted: await client.postJson('/ok', { route: 2 }),
    formed: await client.postForm('/ok', form),
    plain: await failure(client.get('/plain-error')),
    json: await failure(client.delete('/json-error')),
    url: client.url('/datasete_gate/bus/thumb/a?v=5'),
    sent,
  };
}
"""


def test_the_client_on_any_transport(blank) -> None:
    got = blank.evaluate(ON_A_TRANSPORT)
    # Python's json writes a float NaN bare: such a reply still reads, strings untouched.
    assert got["lenient"] == {"a": None, "b": "NaN", "c": [None]}
    assert got["plain"] == [502, "502 Bad Gateway"]  # not JSON: the status line
    assert got["json"] == [409, "that pause is over"]
    assert got["url"] == "/base/api/datasete_gate/bus/thumb/a?v=5"
    sent = got["sent"]
    assert [(s["path"], s["method"]) for s in sent] == [
        ("/ok", "GET"),
        ("/ok", "POST"),
        ("/ok", "POST"),
        ("/plain-error", "GET"),
        ("/json-error", "DELETE"),
    ]
    assert all(s["cache"] == "no-store" for s in sent)  # slot lists and pauses change under the page
    assert sent[1]["type"] == "application/json" and sent[1]["body"] == '{"route":2}'
    assert sent[2]["form"] == ["node"] and sent[2]["type"] is None  # the browser sets the boundary


# The browser's model on a client whose URLs sit under another base (as inside ComfyUI, where
# the page's URLs start with its base path and /api): every URL it hands the view is the
# client's, and thumbnails are the rows' own thumb_url.
MODEL = """
async () => {
  const { httpClient } = await import('/web/http.js');
  const { SlotBrowserModel } = await import('/web/browser/slot_model.js');
  const { busApi } = await import('/web/gate_api.js');
  const client = httpClient({ fetch: (path, init) => fetch(path, init), url: (path) => `/sub/api${path}` });
  let changes = 0;
  const model = new SlotBrowserModel({ bus: busApi(client), onChange: () => changes++ });
  const before = model.view();
  await model.refresh();
  const rows = (await client.get('/datasete_gate/bus/list')).slots;
  const listed = model.view();
  model.openSlot(listed.grid.cards[0].slot, 5);
  const opened = model.view();
  model.page(-1);
  const paged = model.view().detail;
  model.setFilter('zzz');
  return { before: before.grid, rows, listed, opened: opened.detail, paged, filtered: model.view().grid,
           changes };
}
"""


def test_the_browser_model_uses_the_servers_thumb_url_under_the_clients_base(blank) -> None:
    got = blank.evaluate(MODEL)
    assert got["before"] is None  # nothing drawn before the first listing
    (row,) = got["rows"]
    (card,) = got["listed"]["grid"]["cards"]
    assert card["thumbUrl"] == "/sub/api" + row["thumb_url"]
    assert row["thumb_url"].startswith("/datasete_gate/bus/thumb/two?v=")
    detail = got["opened"]
    assert detail["index"] == 1  # asked for image 5 of 2: the last one
    assert detail["imageUrl"].startswith("/sub/api/datasete_gate/bus/image/two/1?v=")
    assert detail["tensorsUrl"] == "/sub/api/datasete_gate/bus/tensors/two"
    assert got["paged"]["index"] == 0 and got["paged"]["key"] > detail["key"]
    assert got["filtered"]["cards"] == [] and got["filtered"]["total"] == 1
    assert got["changes"] >= 4
