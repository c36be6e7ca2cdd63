"""Fixtures shared by the unit tests (the e2e ones have their own, in tests/e2e/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from comfy_standin import ComfyStandIn

from gates.bus.local.store import SlotStore


@pytest.fixture
def bus(tmp_path: Path) -> Path:
    """An empty bus folder, not yet created (the store creates it on the first write)."""
    return tmp_path / "bus"


@pytest.fixture
def store(bus: Path) -> SlotStore:
    """A store on the empty `bus` folder."""
    return SlotStore(bus)


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """The pack loaded as ComfyUI loads it, against stand-ins for the ComfyUI modules it touches:
    (standin, pack)."""
    standin = ComfyStandIn(tmp_path / "input")
    for name, module in standin.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    pack = standin.load_pack()
    yield standin, pack
    for name in [m for m in sys.modules if m.startswith("dataset_gates_pack")]:
        del sys.modules[name]
