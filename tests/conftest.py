"""Fixtures shared by the unit tests (the e2e ones have their own, in tests/e2e/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gates.bus.local.store import SlotStore


@pytest.fixture
def bus(tmp_path: Path) -> Path:
    """An empty bus folder, not yet created (the store creates it on the first write)."""
    return tmp_path / "bus"


@pytest.fixture
def store(bus: Path) -> SlotStore:
    """A store on the empty `bus` folder."""
    return SlotStore(bus)
