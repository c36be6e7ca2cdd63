"""The slot browser page (`python -m gates serve`) in a real headless Chromium, plus its
cross-origin guard.

The page tests need Debian's /usr/bin/chromium (or $DG_CHROMIUM) and the Python `playwright`
package; without either they skip with the reason, or fail when DATASET_GATES_REQUIRE_BROWSER
is set (as in CI). The origin tests are plain aiohttp and always run.
"""

from __future__ import annotations

import asyncio
import os
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from aiohttp.test_utils import TestClient, TestServer

from gates.bus.local.store import SlotStore
from gates.http.app import make_app, same_origin, serving

CHROMIUM = os.environ.get("DG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = os.environ.get("E2E_SHOTS")  # set to also keep screenshots of the page
# Page JS that draws the detail view's image on a canvas `c`, with its 2D context `g`.
DRAW_DETAIL = """const img = document.querySelector('.dg-detail-img');
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);"""


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def bus(tmp_path: Path) -> Path:
    """Three slots: a batch of 3 distinct colours, a bfloat16 one with a mask, a damaged one."""
    root = tmp_path / "bus"
    store = SlotStore(root)
    colours = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9]])
    batch = colours[:, None, None, :].expand(3, 48, 64, 3).contiguous()
    store.publish("batch3", batch, meta={"source": "test"})
    store.publish("half", torch.rand(1, 40, 30, 3).to(torch.bfloat16), torch.ones(1, 40, 30))
    store.publish("broken", torch.rand(1, 8, 8, 3))
    (root / "broken" / "slot.safetensors").write_bytes(b"not a safetensors file")
    return root


def in_thread(coro_fn, *args):
    """Run a coroutine on a fresh loop in its own thread: playwright's sync API owns this one."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro_fn(*args))
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.fixture
def server(bus: Path) -> Iterator[str]:
    """make_app on an ephemeral port, served from a thread until the test ends."""
    with serving(make_app(SlotStore(bus))) as (host, port):
        yield f"http://{host}:{port}"


def no_browser(reason: str) -> None:
    """Skip, or fail where a browser is required (CI sets DATASET_GATES_REQUIRE_BROWSER=1)."""
    if os.environ.get("DATASET_GATES_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(f"{reason} (DATASET_GATES_REQUIRE_BROWSER is set)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        no_browser(f"{CHROMIUM} not found (apt-get install chromium); the page tests need it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("the `playwright` Python package is not installed; the page tests need it")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, server: str):
    """The browser page at GET /, once its first card is drawn."""
    context = chromium.new_context(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server + "/")
    pg.wait_for_selector(".dg-card[data-slot-id='batch3']")
    yield pg
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@contextmanager
def blank_page(chromium, bus: Path, **context_options) -> Iterator:
    """A page of the standalone browser on `bus`, failing the test on any uncaught page error."""
    with serving(make_app(SlotStore(bus))) as (host, port):
        context = chromium.new_context(**context_options)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"http://{host}:{port}/")
        yield page
        context.close()
        assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def blank(chromium, tmp_path: Path) -> Iterator:
    """The standalone page on an empty bus, for tests that import web/ modules into it."""
    with blank_page(chromium, tmp_path / "bus") as page:
        yield page


def harness_fixture(script: str):
    """A fixture: `blank` after running `script` in it (a harness that sets window.dg). The
    module that uses it imports `blank` too."""

    @pytest.fixture
    def harnessed(blank):
        blank.evaluate(script)
        return blank

    return harnessed


def shot(page, name: str) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"browser_{name}.png"))


def answer_dialogs(page, *accept: bool) -> list[str]:
    """Answer the dialogs the page opens from now on, the n-th with accept[n] (the last one for
    any later dialog): True accepts, False dismisses. Returns their messages, as they come."""
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        if accept[min(len(asked), len(accept)) - 1]:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    return asked


def open_slot(page, slot_id: str) -> None:
    page.click(f".dg-card[data-slot-id='{slot_id}']")
    page.wait_for_selector(".dg-detail:not([hidden]) .dg-detail-id")


# -- page tests --------------------------------------------------------------------------------
def test_lists_every_slot_with_loaded_thumbnails(page) -> None:
    ids = page.eval_on_selector_all(".dg-card", "cards => cards.map(c => c.dataset.slotId)")
    assert sorted(ids) == ["batch3", "broken", "half"]
    for slot_id in ("batch3", "half"):
        selector = f".dg-card[data-slot-id='{slot_id}'] img.dg-thumb"
        page.wait_for_function(
            "sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0 }",
            arg=selector,
        )
    # Each thumbnail is the server's own thumb_url for its row (it carries the cache key).
    rows = page.evaluate("async () => (await (await fetch('/datasete_gate/bus/list')).json()).slots")
    srcs = page.eval_on_selector_all(
        ".dg-card img.dg-thumb", "imgs => imgs.map(i => [i.closest('.dg-card').dataset.slotId, i.getAttribute('src')])"
    )
    assert dict(srcs) == {row["id"]: row["thumb_url"] for row in rows if not row["error"]}
    assert all("?v=" in src for _, src in srcs)
    # one convention for pictures, W×H; the tensor's own shape only where it is labelled as one
    # (the card once showed 1×40×30×3 beside 30×40)
    half = page.inner_text(".dg-card[data-slot-id='half']")
    assert half.splitlines()[1:3] == ["30×40 px · batch 1", "bfloat16 · 3 channels · 12.0 KiB"]
    assert "1×40×30×3" not in half
    title = page.get_attribute(".dg-card[data-slot-id='half'] .dg-card-line", "title")
    assert title == "tensor [B,H,W,C] 1×40×30×3 bfloat16"
    broken = page.locator(".dg-card[data-slot-id='broken']")
    assert "dg-bad" in broken.get_attribute("class")
    assert "not a valid Dataset Gates slot" in broken.inner_text()
    shot(page, "grid")


def test_batch_paging_shows_image_two_of_three(page, bus: Path) -> None:
    open_slot(page, "batch3")
    assert page.inner_text(".dg-page-label") == "1 / 3"
    page.click(".dg-next")
    assert page.inner_text(".dg-page-label") == "2 / 3"
    page.wait_for_function(
        "() => { const i = document.querySelector('.dg-detail-img'); "
        "return i && i.complete && i.naturalWidth === 64 && i.src.includes('/bus/image/batch3/1') }"
    )
    # The second image is the green one: sample its centre pixel.
    rgb = page.evaluate(f"""() => {{ {DRAW_DETAIL}
        return Array.from(g.getImageData(32, 24, 1, 1).data.slice(0, 3));
    }}""")
    assert rgb == [26, 204, 51]
    # Its cache key is the slot's checksum: a republished slot's image is a new URL.
    key = urllib.parse.urlencode({"v": SlotStore(bus).info("batch3").checksum})
    assert page.get_attribute(".dg-detail-img", "src").endswith(f"/bus/image/batch3/1?{key}")
    shot(page, "paging")
    page.keyboard.press("ArrowRight")
    assert page.inner_text(".dg-page-label") == "3 / 3"
    assert page.is_disabled(".dg-next")


def test_a_full_size_preview_decodes_exactly_in_the_browser(page, bus: Path) -> None:
    """Chromium's own PNG decoder reads our encoder's Up-filtered, ISA-L-deflated preview of
    a noisy 1024x768 image pixel for pixel (the other page tests show images of a few KB)."""
    from gates import images

    image = torch.rand(1, 768, 1024, 3, generator=torch.Generator().manual_seed(7))
    SlotStore(bus).publish("noise", image)  # 1024 wide: the preview is every pixel, 8-bit
    page.click(".dg-refresh")
    open_slot(page, "noise")
    page.wait_for_function(
        "() => { const i = document.querySelector('.dg-detail-img'); "
        "return i && i.complete && i.naturalWidth === 1024 && i.src.includes('/bus/image/noise/0') }"
    )
    sums = page.evaluate(f"""() => {{ {DRAW_DETAIL}
        const rgba = g.getImageData(0, 0, c.width, c.height).data;
        let plain = 0, placed = 0;
        for (let i = 0, k = 0; i < rgba.length; i++) {{
            if (i % 4 === 3) continue;
            plain += rgba[i]; placed += rgba[i] * (k++ % 65521);
        }}
        return [c.height, plain, placed];
    }}""")
    want = images.to_uint(image[0]).reshape(-1).astype("int64")
    weights = (torch.arange(want.size) % 65521).numpy()
    assert sums == [768, int(want.sum()), int((want * weights).sum())]


def test_delete_asks_and_removes_the_slot_on_disk(page, bus: Path) -> None:
    open_slot(page, "half")
    prompts = answer_dialogs(page, True)
    page.click(".dg-delete")
    page.wait_for_selector(".dg-card[data-slot-id='half']", state="detached")
    assert prompts and "half" in prompts[0]
    assert not (bus / "half").exists()
    assert "Deleted half" in page.inner_text(".dg-status")


def test_dismissed_delete_keeps_the_slot(page, bus: Path) -> None:
    open_slot(page, "half")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click(".dg-delete")
    page.wait_for_timeout(200)
    assert (bus / "half" / "slot.safetensors").is_file()


def test_rename_round_trips_on_disk(page, bus: Path) -> None:
    before = (bus / "half" / "slot.safetensors").read_bytes()
    open_slot(page, "half")
    page.fill(".dg-rename-input", "half_renamed")
    page.click(".dg-rename")
    page.wait_for_function("() => document.querySelector('.dg-detail-id')?.textContent === 'half_renamed'")
    assert not (bus / "half").exists()
    assert (bus / "half_renamed" / "slot.safetensors").read_bytes() == before
    page.click(".dg-back")
    ids = page.eval_on_selector_all(".dg-card", "cards => cards.map(c => c.dataset.slotId)")
    assert "half_renamed" in ids and "half" not in ids


def test_bad_rename_shows_the_server_error(page, bus: Path) -> None:
    open_slot(page, "half")
    page.fill(".dg-rename-input", "no spaces allowed")
    page.click(".dg-rename")
    page.wait_for_selector(".dg-status.dg-error")
    text = page.inner_text(".dg-status")
    assert "invalid slot id 'no spaces allowed'" in text  # the server's own message
    assert (bus / "half").is_dir()
    shot(page, "rename_error")


def test_rename_onto_an_existing_slot_needs_overwrite(page, bus: Path) -> None:
    open_slot(page, "half")
    page.fill(".dg-rename-input", "batch3")
    page.click(".dg-rename")
    page.wait_for_selector(".dg-status.dg-error")
    assert "already exists" in page.inner_text(".dg-status")
    page.check(".dg-overwrite")
    page.click(".dg-rename")
    page.wait_for_function("() => document.querySelector('.dg-detail-id')?.textContent === 'batch3'")
    assert SlotStore(bus).info("batch3").image_dtype == "bfloat16"


def test_download_gives_the_exact_slot_file(page, bus: Path) -> None:
    open_slot(page, "batch3")
    with page.expect_download() as download:
        page.click(".dg-download")
    assert download.value.suggested_filename == "batch3.safetensors"
    got = Path(download.value.path()).read_bytes()
    assert got == (bus / "batch3" / "slot.safetensors").read_bytes()


def test_refresh_picks_up_new_slots(page, bus: Path) -> None:
    SlotStore(bus).publish("late", torch.rand(2, 16, 16, 3))
    page.click(".dg-refresh")
    page.wait_for_selector(".dg-card[data-slot-id='late']")


# -- origin guard (no browser) -----------------------------------------------------------------
def _request(bus: Path, method: str, path: str, **kwargs) -> tuple[int, dict]:
    async def go() -> tuple[int, dict]:
        async with TestClient(TestServer(make_app(SlotStore(bus)))) as client:
            response = await client.request(method, path, **kwargs)
            return response.status, await response.json()

    return in_thread(go)


def test_cross_origin_post_is_refused(bus: Path) -> None:
    status, body = _request(
        bus, "POST", "/datasete_gate/bus/half/rename", json={"to": "stolen"}, headers={"Origin": "http://evil.example"}
    )
    assert status == 403 and "cross-origin" in body["error"]
    assert (bus / "half").is_dir() and not (bus / "stolen").exists()


def test_cross_origin_delete_is_refused(bus: Path) -> None:
    status, _ = _request(bus, "DELETE", "/datasete_gate/bus/half", headers={"Origin": "null"})
    assert status == 403
    assert (bus / "half").is_dir()


def test_resume_in_the_standalone_browser_is_501(bus: Path) -> None:
    """Resuming a parked run queues a prompt: only ComfyUI can."""
    status, body = _request(bus, "POST", "/datasete_gate/resume/half", json={})
    assert status == 501
    assert body == {"error": "Resume needs ComfyUI: open this bus in ComfyUI's sidebar"}


def test_same_origin_post_is_allowed(bus: Path) -> None:
    async def go() -> int:
        async with TestClient(TestServer(make_app(SlotStore(bus)))) as client:
            origin = f"http://{client.host}:{client.port}"
            response = await client.post(
                "/datasete_gate/bus/half/rename", json={"to": "renamed"}, headers={"Origin": origin}
            )
            return response.status

    assert in_thread(go) == 200
    assert (bus / "renamed").is_dir()


def test_post_without_origin_and_cross_origin_get_are_allowed(bus: Path) -> None:
    status, _ = _request(bus, "POST", "/datasete_gate/bus/half/rename", json={"to": "plain"})
    assert status == 200
    status, body = _request(bus, "GET", "/datasete_gate/bus/list", headers={"Origin": "http://evil.example"})
    assert status == 200 and {s["id"] for s in body["slots"]} == {"batch3", "broken", "plain"}


@pytest.mark.parametrize(
    "origin, host, expected",
    [
        ("http://127.0.0.1:8189", "127.0.0.1:8189", True),
        ("http://LOCALHOST:8189", "localhost:8189", True),
        ("http://localhost", "localhost:80", True),
        ("https://example.com", "example.com", False),  # scheme default port differs from http's
        ("https://127.0.0.1:8189", "127.0.0.1:8189", False),  # same host and port, other scheme
        ("http://127.0.0.1:8190", "127.0.0.1:8189", False),
        ("http://evil.example", "127.0.0.1:8189", False),
        ("http://[::1]:8189", "[::1]:8189", True),
        ("null", "127.0.0.1:8189", False),
        ("http://127.0.0.1:99999", "127.0.0.1:8189", False),
    ],
)
def test_same_origin_rule(origin: str, host: str, expected: bool) -> None:
    assert same_origin(origin, host) is expected


def test_page_and_static_files_are_served(bus: Path) -> None:
    async def go() -> tuple[str, int, int, int]:
        async with TestClient(TestServer(make_app(SlotStore(bus)))) as client:
            page = await client.get("/")
            module = await client.get("/web/browser/slot_browser.js")
            shared = await client.get("/web/http.js")  # the shared HTTP client, one folder up
            escape = await client.get("/web/../gates/browser.py")
            return await page.text(), module.status, shared.status, escape.status

    html, module_status, shared_status, escape_status = in_thread(go)
    assert '<base href="/web/browser/">' in html and "mountBrowser" in html
    assert module_status == 200 and shared_status == 200
    assert escape_status in (403, 404)


def test_missing_web_folder_is_a_clear_error(bus: Path, monkeypatch) -> None:
    import gates.http.app as browser

    monkeypatch.setattr(browser, "PAGE", bus / "nowhere" / "index.html")
    with pytest.raises(FileNotFoundError, match="slot browser page is missing"):
        browser.make_app(SlotStore(bus))


def test_serve_prints_url_and_bus(bus: Path, capsys) -> None:
    """What `python -m gates serve` prints once it listens: the URL and the bus folder."""
    import gates.http.app as browser

    class StopAtOnce:
        async def wait(self) -> None:
            return None

    in_thread(browser._run, SlotStore(bus), "127.0.0.1", 0, StopAtOnce())
    out = capsys.readouterr().out
    assert "http://127.0.0.1:" in out and str(bus.resolve()) in out and "Ctrl-C" in out


def test_versions_can_be_viewed_and_pinned(page, bus: Path) -> None:
    """With history kept, the page steps through id, id@-1, ... and pins the slot."""
    from policy_files import write_policy

    from gates.bus.policy import Policy

    store = SlotStore(bus)
    write_policy(bus, Policy(keep=3))
    for value in (0.2, 0.5, 0.8):  # three versions of one grey slot, darkest oldest
        store.publish("grey", torch.full((1, 16, 16, 3), value))
    page.click(".dg-refresh")
    page.wait_for_selector(".dg-card[data-slot-id='grey']")
    assert "3 versions" in page.inner_text(".dg-card[data-slot-id='grey']")
    open_slot(page, "grey")
    page.wait_for_selector(".dg-version[data-ref='grey@-2']")
    assert page.eval_on_selector_all(".dg-version", "els => els.map(e => e.dataset.ref)") == [
        "grey",
        "grey@-1",
        "grey@-2",
    ]
    history = page.evaluate("async () => (await (await fetch('/datasete_gate/bus/history/grey')).json()).versions")
    srcs = page.eval_on_selector_all(".dg-version img", "imgs => imgs.map(i => i.getAttribute('src'))")
    assert srcs == [v["thumb_url"] for v in history]
    page.click(".dg-version[data-ref='grey@-2']")
    page.wait_for_function("document.querySelector('.dg-detail-id').textContent === 'grey@-2'")
    page.wait_for_function("document.querySelector('.dg-detail-img').complete")
    shot(page, "versions")
    grey = page.evaluate(f"""() => {{ {DRAW_DETAIL}
        return g.getImageData(1, 1, 1, 1).data[0];
    }}""")
    assert grey == round(0.2 * 255)  # the oldest version's pixels, not the latest's
    href = page.get_attribute(".dg-download", "href")
    assert href.endswith("/bus/tensors/grey%40-2")
    page.click(".dg-pin")
    page.wait_for_function("document.querySelector('.dg-pin').textContent === 'Unpin'")
    assert store.info("grey").pinned


def test_serving_a_taken_port_raises_at_once(bus: Path) -> None:
    import socket
    import time

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        start = time.monotonic()
        with pytest.raises(OSError), serving(make_app(SlotStore(bus)), port=taken.getsockname()[1]):
            pass
    assert time.monotonic() - start < 10


def test_a_parked_slot_is_marked_and_the_page_says_resume_needs_comfyui(page, bus: Path) -> None:
    """The standalone page shows a parked slot (meta.parked) but offers no Resume: it has no
    ComfyUI to queue the prompt in (its POST /resume answers 501), so it says so instead."""
    prompt = {
        "1": {"class_type": "ImageGate", "inputs": {"routes": 2, "get_id": ""}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 1], "filename_prefix": "x"}},
    }
    SlotStore(bus).publish(
        "parked-0a1b2c3d-1",
        torch.rand(4, 24, 32, 3),
        meta={"parked": True, "prompt": prompt, "node": "1", "prompt_id": "0a1b2c3d-prompt", "source": "input"},
    )
    page.click(".dg-refresh")
    card = ".dg-card[data-slot-id='parked-0a1b2c3d-1']"
    page.wait_for_selector(f"{card}.dg-parked .dg-parked-badge")
    assert page.locator(".dg-card.dg-parked").count() == 1  # only that one
    page.wait_for_function(
        "sel => { const i = document.querySelector(sel + ' img.dg-thumb'); return i && i.complete && i.naturalWidth > 0 }",
        arg=card,
    )
    shot(page, "parked_card")
    open_slot(page, "parked-0a1b2c3d-1")
    box = page.inner_text(".dg-parked-box")
    assert "gate 1 of prompt 0a1b2c3d-prompt" in box
    assert "Resume needs ComfyUI: open this bus in ComfyUI's sidebar." in box
    assert page.locator(".dg-resume").count() == 0
    facts = page.inner_text(".dg-facts")
    assert "an API prompt of 2 nodes" in facts and "SaveImage" not in facts
    page.wait_for_function("() => document.querySelector('.dg-detail-img')?.complete")
    shot(page, "parked_detail")


# The browser as ComfyUI's sidebar mounts it (with `resume`), on the standalone server's bus,
# its resume plans answered as ComfyUI's GET /resume/{id} would: a sealed run lists its nodes,
# a planted one is refused with the server's reason.
AS_IN_COMFYUI = """
async () => {
  window.dgBrowser.destroy();
  const { mountBrowser } = await import('/web/browser/slot_browser.js');
  const { busApi } = await import('/web/gate_api.js');
  const { HttpError, fetchClient } = await import('/web/http.js');
  const bus = {
    ...busApi(fetchClient('')),
    resumePlan: async (id) => {
      if (id === 'planted') throw new HttpError(
        "slot 'planted' holds a parked run that this ComfyUI did not park (it has no seal): refused", 403);
      return { slot: id, count: 4, nodes: [
        { class_type: 'SaveImage', count: 2 }, { class_type: 'ImageGate', count: 1 }, { class_type: 'LoadImage', count: 1 }] };
    },
  };
  window.resumed = [];
  const resume = async (id) => { window.resumed.push(id); return { prompt_id: 'p-1' }; };
  window.dgBrowser = mountBrowser(document.getElementById('app'), { bus, resume, promptState: async () => 'queued' });
}
"""


def test_resume_names_the_nodes_it_will_run_and_a_planted_run_says_why_not(page, bus: Path) -> None:
    prompt = {"1": {"class_type": "ImageGate", "inputs": {"routes": 2}}}
    for slot_id in ("sealed", "planted"):
        SlotStore(bus).publish(slot_id, torch.rand(1, 8, 8, 3), meta={"parked": True, "prompt": prompt, "node": "1"})
    page.evaluate(AS_IN_COMFYUI)
    page.wait_for_selector(".dg-card[data-slot-id='planted']")
    open_slot(page, "planted")
    page.wait_for_selector(".dg-resume-plan.dg-error")
    assert "did not park (it has no seal): refused" in page.inner_text(".dg-resume-plan")
    assert page.locator(".dg-resume").count() == 0  # nothing to click
    shot(page, "parked_refused")
    page.click(".dg-back")
    open_slot(page, "sealed")
    plan = "Resume will run 4 nodes: SaveImage ×2, ImageGate ×1, LoadImage ×1"
    page.wait_for_function("t => document.querySelector('.dg-resume-plan')?.textContent === t", arg=plan)
    asked = answer_dialogs(page, False, True)  # dismissed, then accepted
    page.click(".dg-resume:not([disabled])")
    page.wait_for_function("() => true")
    assert asked == [f"{plan}.\n\nQueue them in this tab?"] and page.evaluate("window.resumed") == []
    page.click(".dg-resume")
    page.wait_for_function("() => window.resumed.length === 1")
    assert page.evaluate("window.resumed") == ["sealed"]


def test_a_slot_whose_meta_holds_nan_still_lists(page, bus: Path) -> None:
    """Python's json writes a float NaN as a bare NaN, which browsers refuse; a parked slot's
    stored prompt has one (ComfyUI's is_changed). The list, and that slot, still show."""
    SlotStore(bus).publish(
        "nan_meta",
        torch.rand(1, 8, 8, 3),
        meta={
            "parked": True,
            "node": "1",
            "prompt": {"1": {"class_type": "ImageGate", "inputs": {}, "is_changed": [float("nan")]}},
        },
    )
    page.click(".dg-refresh")
    page.wait_for_selector(".dg-card[data-slot-id='nan_meta'] .dg-parked-badge")
    assert page.locator(".dg-card").count() == 4
    assert not page.inner_text(".dg-status")


def test_an_empty_bus_says_how_slots_get_made(chromium, tmp_path: Path) -> None:
    """The hint once sat squeezed in the grid's first 130 px column, top left."""
    with serving(make_app(SlotStore(tmp_path / "empty"))) as (host, port):
        page = chromium.new_page(viewport={"width": 1100, "height": 500})
        try:
            page.goto(f"http://{host}:{port}/")
            text = page.inner_text(".dg-empty")
            hint = page.locator(".dg-empty").bounding_box()
            lines = page.evaluate(
                "() => { const e = document.querySelector('.dg-empty'); "
                "return Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)); }"
            )
            shot(page, "empty_bus")
        finally:
            page.close()
    assert text.startswith("No slots yet.")
    assert all(way in text for way in ("send_id", "Bus Save", "gates import"))
    assert hint["width"] > 400 and lines <= 4  # a paragraph across the page, not a tall column


# -- damage, found where it is found -------------------------------------------------------------
def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # tensor data: the header still reads, only a checksum finds it
    path.write_bytes(bytes(data))


def _actions(page) -> list[str]:
    return page.eval_on_selector_all(".dg-detail .dg-actions .dg-btn", "els => els.map(e => e.textContent.trim())")


def test_verify_finds_a_checksum_damaged_slot_and_leaves_only_what_works(page, bus: Path) -> None:
    """A slot whose tensor bytes are damaged once looked healthy everywhere in the page."""
    SlotStore(bus).publish("flip", torch.rand(2, 24, 32, 3), torch.rand(2, 24, 32))
    _flip_last_byte(bus / "flip" / "slot.safetensors")
    page.click(".dg-refresh")
    open_slot(page, "flip")
    assert page.locator(".dg-damage").count() == 0  # nothing has read the data yet
    assert _actions(page) == ["Rename", "Verify", "Download tensors", "Pin", "Delete…"]
    page.click(".dg-verify")
    page.wait_for_selector(".dg-damage")
    damage = page.inner_text(".dg-damage")
    assert "Damaged: slot 'flip': failed its checksum" in damage and "rename it" in damage
    assert str(bus) not in damage
    assert _actions(page) == ["Rename", "Delete…"]  # no download, pin or verify of a damaged file
    assert "32×24 px" in page.inner_text(".dg-facts")  # the header reads: its facts are the file's own
    page.set_viewport_size({"width": 1100, "height": 900})  # the actions too
    shot(page, "checksum_damaged_detail")
    page.click(".dg-back")
    card = page.locator(".dg-card[data-slot-id='flip']")
    assert "dg-bad" in card.get_attribute("class") and "failed its checksum" in card.inner_text()
    shot(page, "checksum_damaged_card")


def test_download_of_a_damaged_slot_shows_the_error_instead(page, bus: Path) -> None:
    """The download's 422 once went to the browser's download bar only: the page said nothing."""
    SlotStore(bus).publish("flip", torch.rand(1, 16, 16, 3))
    _flip_last_byte(bus / "flip" / "slot.safetensors")
    downloads: list = []
    page.on("download", lambda download: downloads.append(download))
    page.click(".dg-refresh")
    open_slot(page, "flip")
    page.click(".dg-download")
    page.wait_for_selector(".dg-damage")
    assert "failed its checksum" in page.inner_text(".dg-damage")
    page.wait_for_timeout(300)
    assert downloads == [] and page.locator(".dg-download").count() == 0


def test_a_healthy_slot_verifies_and_then_downloads(page, bus: Path) -> None:
    open_slot(page, "batch3")
    page.click(".dg-verify")
    page.wait_for_function("() => document.querySelector('.dg-verify-status')?.textContent.startsWith('Checksum OK')")
    with page.expect_download() as download:
        page.click(".dg-download")
    assert Path(download.value.path()).read_bytes() == (bus / "batch3" / "slot.safetensors").read_bytes()


def test_an_unreadable_slot_says_what_is_known_and_can_be_renamed(page, bus: Path) -> None:
    """Its detail once showed `mask none`, `size 0 B`, `pinned no` as if real, with Download
    and Pin enabled; rename works on it and says it is still damaged."""
    open_slot(page, "broken")
    damage = page.inner_text(".dg-damage")
    assert "Damaged: slot 'broken': not a valid Dataset Gates slot file" in damage
    detail = page.inner_text(".dg-detail")
    assert all(fake not in detail for fake in ("0 B", "none", "pinned", "1 / ", "Download"))
    assert page.locator(".dg-detail .dg-facts, .dg-detail .dg-pager, .dg-detail img").count() == 0
    assert _actions(page) == ["Rename", "Delete…"]
    shot(page, "unreadable_detail")
    page.fill(".dg-rename-input", "broken_kept")
    page.click(".dg-rename")
    page.wait_for_function("() => document.querySelector('.dg-detail-id')?.textContent === 'broken_kept'")
    assert "Renamed broken to broken_kept" in page.inner_text(".dg-status")
    assert "slot 'broken_kept': not a valid" in page.inner_text(".dg-damage")
    assert (bus / "broken_kept").is_dir() and not (bus / "broken").exists()


def test_the_detail_shows_the_latent_and_the_mask(page, bus: Path) -> None:
    """Neither was ever shown: the latent not at all, the mask not as a picture."""
    mask = torch.zeros(2, 40, 60)
    mask[1, :, :30] = 1.0  # image 2: its left half masked
    latent = {"samples": torch.randn(2, 4, 5, 8, dtype=torch.bfloat16)}
    SlotStore(bus).publish("masked", torch.rand(2, 40, 60, 3), mask, latent=latent)
    page.click(".dg-refresh")
    open_slot(page, "masked")
    facts = dict(
        page.eval_on_selector_all(
            ".dg-facts tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"
        )
    )
    assert facts["latent"] == "[B,C,H,W] 2×4×5×8 bfloat16"
    assert facts["mask"] == "[B,H,W] 2×40×60 float32"
    assert facts["picture"] == "60×40 px (width × height) · batch 2 · 3 channels"
    assert facts["tensor"] == "[B,H,W,C] 2×40×60×3 float32"
    page.click(".dg-next")
    page.click(".dg-layer[data-layer='mask']")
    page.wait_for_function(
        "() => { const i = document.querySelector('.dg-detail-img'); "
        "return i && i.complete && i.naturalWidth === 60 && i.src.includes('/bus/mask/masked/1') }"
    )
    left, right = page.evaluate(f"""() => {{ {DRAW_DETAIL}
        return [g.getImageData(10, 20, 1, 1).data[0], g.getImageData(50, 20, 1, 1).data[0]];
    }}""")
    assert (left, right) == (255, 0)  # white = masked
    shot(page, "mask_and_latent")
    page.click(".dg-layer[data-layer='image']")
    page.wait_for_function("() => document.querySelector('.dg-detail-img').src.includes('/bus/image/masked/1')")
    page.click(".dg-back")
    open_slot(page, "batch3")  # no mask: no switch
    assert page.locator(".dg-layer").count() == 0
