"""The slot browser on a big or unchanged bus: a refresh of an unchanged bus is a 304 that
keeps the cards drawn, and the grid draws CARDS_PAGE cards at a time (web/browser/).
Needs Chromium and playwright, as tests/test_browser_page.py (skips without them, fails in CI)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from test_browser_page import blank_page, chromium  # noqa: F401 - the shared fixture

from gates.bus.local.store import SlotStore

pytestmark = pytest.mark.browser
PAGE = 200  # CARDS_PAGE in web/browser/slot_model.js


def _fill(root: Path, count: int) -> None:
    """`count` slots: one published, its files copied (what a listing reads is the same)."""
    SlotStore(root).publish("s0000", torch.rand(1, 8, 8, 3))
    for n in range(1, count):
        (root / f"s{n:04d}").mkdir()
        for name in ("slot.safetensors", "thumb.png"):
            shutil.copyfile(root / "s0000" / name, root / f"s{n:04d}" / name)


def _listing(response) -> bool:
    return "/bus/list" in response.url


def test_a_refresh_of_an_unchanged_bus_is_a_304_and_keeps_the_cards(chromium, tmp_path: Path) -> None:
    bus = tmp_path / "bus"
    _fill(bus, 2)
    with blank_page(chromium, bus) as page:
        page.wait_for_selector(".dg-card[data-slot-id='s0001']")
        page.eval_on_selector(".dg-card", "card => { card.dataset.mark = 'drawn once'; }")
        with page.expect_response(_listing) as unchanged:
            page.click(".dg-refresh")
        assert unchanged.value.status == 304 and unchanged.value.request.headers["if-none-match"]
        assert page.eval_on_selector(".dg-card", "card => card.dataset.mark") == "drawn once"  # not redrawn
        assert page.eval_on_selector_all(".dg-card", "cards => cards.length") == 2
        SlotStore(bus).publish("late", torch.rand(1, 8, 8, 3))
        with page.expect_response(_listing) as changed:
            page.click(".dg-refresh")
        assert changed.value.status == 200
        page.wait_for_selector(".dg-card[data-slot-id='late']")


def test_a_big_bus_draws_its_cards_a_page_at_a_time(chromium, tmp_path: Path) -> None:
    bus = tmp_path / "bus"
    _fill(bus, PAGE + 5)
    with blank_page(chromium, bus) as page:
        page.wait_for_selector(".dg-more")
        assert page.eval_on_selector_all(".dg-card", "cards => cards.length") == PAGE
        assert page.inner_text(".dg-more") == "Show 5 more (5 not shown)"
        page.click(".dg-more")
        page.wait_for_function(f"document.querySelectorAll('.dg-card').length === {PAGE + 5}")
        assert page.query_selector(".dg-more") is None
        page.fill(".dg-filter", "s0")  # a new filter starts from the first page again
        page.wait_for_function(f"document.querySelectorAll('.dg-card').length === {PAGE}")
        page.fill(".dg-filter", "s01")
        page.wait_for_function(
            "document.querySelectorAll('.dg-card').length === 100 && !document.querySelector('.dg-more')"
        )
