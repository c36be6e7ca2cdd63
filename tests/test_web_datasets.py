"""The slot browser's Datasets panel (web/browser/slot_model.js, slot_browser.js) in headless Chromium.

Its pure functions (a report as the row the panel draws, the folders remembered) and its model
on a recording bus run in the standalone server's page, as tests/test_web_http.py runs the
slot browser's model; then the real page against `gates serve`'s /dataset routes: the folders
read lately, a typed folder's report, refusals as text, and the folder remembered across a
reload. Waits are on the page's state, never on time. Needs Chromium and playwright (skips
without them, fails in CI).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
from dataset_files import decided_set
from test_browser_page import blank, blank_page, chromium, harness_fixture  # noqa: F401 - the shared fixtures

from gates.dataset.report import RECENT
from gates.dataset.roots import ENV_VAR

pytestmark = pytest.mark.browser

REPORT = {
    "folder": "/data/set",
    "depth": 1,
    "progress": "1,234 / 5,000 decided: 900 keep · 300 drop · 34 fix",
    "total": 5000,
    "decided": 1234,
    "routes": [
        {"route": 0, "label": "drop", "count": 300},
        {"route": 1, "label": "keep", "count": 900},
        {"route": 2, "label": "fix", "count": 34},
    ],
    "kept": 1,
    "buckets": [{"bucket": "832x1216", "count": 600}, {"bucket": "1024x1024", "count": 300}],
}

# window.dg: the model's module, a recording bus (`sent`, answers from `replies`, a reply that
# is an Error rejects) and a storage stand-in (`stored`), and `make()`, a model on them.
HARNESS = """
async () => {
  const mod = await import('/web/browser/slot_model.js');
  const sent = [];
  const replies = { recent: [], report: {} };
  const answer = async (name, value) => {
    const reply = replies[name];
    if (reply instanceof Error) throw reply;
    return structuredClone(typeof reply === 'function' ? reply(value) : reply);
  };
  const bus = {
    list: async () => ({ bus: 'b', slots: [] }), thumbUrl: () => '',
    datasetRecent: async () => { sent.push(['recent']); return answer('recent'); },
    datasetReport: async (folder, depth) => { sent.push(['report', folder, depth]); return answer('report', folder); },
  };
  const stored = new Map();
  const storage = { getItem: (k) => stored.get(k) ?? null, setItem: (k, v) => stored.set(k, String(v)) };
  const make = () => new mod.SlotBrowserModel({ bus, storage });
  window.dg = { ...mod, sent, replies, stored, storage, make };
}
"""
panel = harness_fixture(HARNESS)


def test_a_report_becomes_a_row_with_its_progress_kept_set_and_buckets(panel) -> None:
    got = panel.evaluate(
        """(report) => ({
      row: dg.reportRow(report),
      nothing: dg.reportRow({ folder: '/new', depth: 0, progress: '0 / 3 decided', routes: [], kept: null, buckets: [] }),
      unsized: dg.reportRow({ ...report, buckets: [] }).kept,
      one: dg.reportRow({ ...report, routes: [{ route: 0, label: '', count: 1 }], kept: 0, buckets: [] }).kept,
      error: dg.reportRow({ folder: '/gone', depth: 2, error: 'no such folder' }),
      rows: dg.reportRows([report, null]).map((r) => r.error),
      notAList: dg.reportRows('x'),
    })""",
        REPORT,
    )
    assert got["row"] == {
        "folder": "/data/set",
        "depth": 1,
        "error": None,
        "progress": REPORT["progress"],
        "kept": "kept set: keep, 900 files in buckets:",
        "buckets": [
            {"bucket": "832x1216", "count": 600, "text": "600", "share": 1},
            {"bucket": "1024x1024", "count": 300, "text": "300", "share": 0.5},
        ],
    }
    assert got["nothing"]["kept"] == "nothing decided yet" and got["nothing"]["buckets"] == []
    assert got["unsized"] == "kept set: keep, 900 files (no sizes known: no buckets)"
    assert got["one"] == "kept set: route 0, 1 file (no sizes known: no buckets)"
    assert got["error"] == {
        "folder": "/gone",
        "depth": 2,
        "error": "no such folder",
        "progress": "",
        "kept": "",
        "buckets": [],
    }
    assert got["rows"] == [None, "not a report"]
    assert got["notAList"] == []


def test_folders_are_remembered_newest_first_once_each(panel) -> None:
    got = panel.evaluate("""() => {
      let list = [];
      for (const [f, d] of [['/a', 0], ['/b', 1], ['/a', 2]]) list = dg.rememberFolder(list, f, d);
      const many = Array.from({ length: 20 }, (_, i) => i).reduce((l, i) => dg.rememberFolder(l, `/f${i}`, 0), []);
      dg.stored.set(dg.FOLDERS_KEY, JSON.stringify([{ folder: '/x', depth: '3' }, { folder: '' }, 7, { depth: 1 }]));
      const read = dg.storedFolders(dg.storage);
      dg.stored.set(dg.FOLDERS_KEY, '{not json');
      return { list, many: [many.length, many[0].folder], read, broken: dg.storedFolders(dg.storage), none: dg.storedFolders(null) };
    }""")
    assert got["list"] == [{"folder": "/a", "depth": 2}, {"folder": "/b", "depth": 1}]
    assert got["many"] == [12, "/f19"]
    assert got["read"] == [{"folder": "/x", "depth": 3}]
    assert got["broken"] == [] and got["none"] == []


def test_the_model_lists_on_opening_and_reports_a_typed_folder_without_throwing(panel) -> None:
    got = panel.evaluate(
        """async (report) => {
      const m = dg.make();
      const out = { closed: m.view().datasets };
      await m.refresh();  // closed: the datasets are not asked for
      out.sentClosed = dg.sent.splice(0);
      dg.replies.recent = [report, { folder: '/gone', depth: 0, error: 'not a folder' }];
      await m.showDatasets(true);
      out.opened = m.view().datasets;
      out.openStored = dg.stored.get(dg.DATASETS_OPEN_KEY);
      dg.replies.report = (folder) => ({ ...report, folder });
      await m.askDataset('  /data/set  ', '2.7');
      await m.askDataset('/deep', 99);
      out.asked = m.view().datasets.asked;
      dg.replies.report = Object.assign(new Error('outside the folders this server may read'), { status: 403 });
      await m.askDataset('/secret', 0);
      out.refused = m.view().datasets.asked;
      await m.askDataset('   ', 0);
      out.empty = m.view().datasets.asked.error;
      out.folders = m.view().datasets.folders;
      out.storedFolders = JSON.parse(dg.stored.get(dg.FOLDERS_KEY));
      dg.replies.recent = new Error('503 Service Unavailable');
      await m.refreshDatasets();
      out.failed = m.view().datasets;
      out.sent = dg.sent.splice(0);
      out.again = dg.make().view().datasets;  // a new page view: open, with the folders kept
      return out;
    }""",
        REPORT,
    )
    closed = got["closed"]
    assert closed["open"] is False and closed["recent"] is None and closed["asked"] is None
    assert got["sentClosed"] == []
    opened = got["opened"]
    assert opened["open"] is True and got["openStored"] == "1"
    assert [r["folder"] for r in opened["recent"]] == ["/data/set", "/gone"]
    assert opened["recent"][1]["error"] == "not a folder" and opened["message"] == {"text": "", "isError": False}
    asked = got["asked"]
    assert asked["folder"] == "/deep" and asked["depth"] == 32 and asked["error"] == ""
    assert asked["row"]["progress"] == REPORT["progress"] and asked["row"]["folder"] == "/deep"
    assert got["refused"]["row"] is None
    assert got["refused"]["error"] == "Could not report /secret: outside the folders this server may read"
    assert got["empty"] == "Type a dataset folder on the server first."
    assert (
        got["folders"]
        == got["storedFolders"]
        == [{"folder": "/deep", "depth": 32}, {"folder": "/data/set", "depth": 2}]
    )
    assert got["failed"]["message"] == {"text": "Could not list the datasets: 503 Service Unavailable", "isError": True}
    assert [r["folder"] for r in got["failed"]["recent"]] == ["/data/set", "/gone"]  # the last listing stays
    assert got["sent"] == [
        ["recent"],
        ["report", "/data/set", 2],
        ["report", "/deep", 32],
        ["report", "/secret", 0],
        ["recent"],
    ]
    assert got["again"]["open"] is True and got["again"]["folders"] == got["folders"]


@pytest.fixture
def recent(tmp_path: Path, monkeypatch) -> Path:
    """A decided dataset folder read lately by this server, and a folder read lately and gone."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(RECENT, "_folders", OrderedDict())
    folder = decided_set(tmp_path / "set")
    RECENT.add(str(tmp_path / "gone"), 0)
    RECENT.add(str(folder), 0)
    return folder


def test_the_page_shows_recent_datasets_and_a_typed_folder_and_remembers_it(chromium, recent: Path, tmp_path) -> None:
    with blank_page(chromium, tmp_path / "bus") as page:
        panel = page.locator(".dg-datasets")
        assert panel.get_attribute("open") is None  # collapsed until opened
        page.click(".dg-ds-summary")
        page.wait_for_selector(f".dg-ds-recent .dg-ds-card[data-folder='{recent}']")
        card = page.locator(f".dg-ds-recent .dg-ds-card[data-folder='{recent}']")
        assert card.locator(".dg-ds-progress").text_content() == "2 / 3 decided: 1 keep · 1 drop"
        assert card.locator(".dg-ds-kept").text_content() == "kept set: keep, 1 file in buckets:"
        assert card.locator(".dg-ds-bucket-name").all_text_contents() == ["1024x704"]
        assert card.locator(".dg-ds-bucket-count").all_text_contents() == ["1"]
        gone = page.locator(f".dg-ds-recent .dg-ds-card.dg-bad[data-folder='{tmp_path / 'gone'}'] .dg-card-error")
        assert gone.text_content()

        # A folder that is not a dataset: the server's reason, as text.
        page.fill(".dg-ds-folder", str(tmp_path / "nothing"))
        page.press(".dg-ds-folder", "Enter")
        page.wait_for_selector(".dg-ds-asked .dg-card-error")
        assert page.text_content(".dg-ds-asked .dg-card-error").startswith(f"Could not report {tmp_path / 'nothing'}: ")

        page.fill(".dg-ds-folder", str(recent))
        page.fill(".dg-ds-depth", "1")
        page.click(".dg-ds-ask")
        page.wait_for_selector(".dg-ds-asked .dg-ds-progress")
        assert page.text_content(".dg-ds-asked .dg-ds-progress") == "2 / 3 decided: 1 keep · 1 drop"
        assert page.text_content(".dg-ds-asked .dg-ds-title") == f"{recent} (depth 1)"

        # A reload: the panel opens again with the last folder that reported, and lists it.
        page.reload()
        page.wait_for_selector(f".dg-datasets[open] .dg-ds-recent .dg-ds-card[data-folder='{recent}']")
        assert page.input_value(".dg-ds-folder") == str(recent) and page.input_value(".dg-ds-depth") == "1"
        options = page.eval_on_selector_all(".dg-datasets datalist option", "(os) => os.map((o) => o.value)")
        assert options == [str(recent)]


def test_an_empty_server_says_where_datasets_come_from(chromium, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(RECENT, "_folders", OrderedDict())
    with blank_page(chromium, tmp_path / "bus") as page:
        page.click(".dg-ds-summary")
        page.wait_for_selector(".dg-ds-none")
        assert page.text_content(".dg-ds-none").startswith("No dataset read yet")
