"""Fixtures shared by the unit tests (the e2e ones have their own, in tests/e2e/conftest.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from comfy_standin import ComfyStandIn
from moto_s3 import S3Server

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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 and a free port, for the whole session (see moto_s3)."""
    pytest.importorskip("obstore", reason='the object bus needs obstore: pip install -e ".[s3]"')
    pytest.importorskip("moto.server", reason='the S3 tests need moto[server]: pip install -e ".[test]"')
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_location(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://<a fresh bucket>/bus`, the AWS variables set to reach it, no fault planned."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    s3_server.faults.clear()
    return f"s3://{s3_server.bucket()}/bus"
