"""The bus contract (tests/bus_contract.py) against every backend, unchanged for each: a
folder, this process's memory, and an S3 bucket on moto's real S3 server (tests/moto_s3.py)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from bus_contract import BusContract, BusKit

from gates.bus import open_bus
from gates.bus.local.store import SLOT_FILE, SlotStore
from gates.bus.memory import MemoryBus, forget

_names = itertools.count()


class TestFolderBus(BusContract):
    @pytest.fixture
    def kit(self, tmp_path: Path) -> BusKit:
        bus = open_bus(tmp_path / "bus")
        assert isinstance(bus, SlotStore)

        def put_raw(slot_id: str, data: bytes) -> None:
            folder = tmp_path / "bus" / slot_id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / SLOT_FILE).write_bytes(data)

        return BusKit(bus, lambda slot_id: (tmp_path / "bus" / slot_id / SLOT_FILE).read_bytes(), put_raw)

    def test_no_folder_and_a_file_are_no_bus(self, tmp_path: Path) -> None:
        """What tells `gates ls --bus typo` from an empty bus; nothing is created by asking."""
        assert not open_bus(tmp_path / "typo").bus_exists()
        (tmp_path / "rgb.png").write_bytes(b"\x89PNG")
        with pytest.raises(ValueError, match=r"^bus 'rgb.png' is a file, not a bus folder: give a folder$"):
            open_bus(tmp_path / "rgb.png").bus_exists()
        (tmp_path / "empty").mkdir()
        assert open_bus(tmp_path / "empty").bus_exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "rgb.png"]


class TestMemoryBus(BusContract):
    @pytest.fixture
    def kit(self) -> Iterator[BusKit]:
        name = f"contract-{os.getpid()}-{next(_names)}"
        bus = open_bus(f"memory://{name}")
        assert isinstance(bus, MemoryBus)
        yield BusKit(bus, bus.raw, bus.put_raw)
        forget(name)


class TestObjectBus(BusContract):
    @pytest.fixture
    def kit(self, s3_location: str) -> BusKit:
        from gates.bus.object import ObjectBus

        bus = open_bus(s3_location)
        assert isinstance(bus, ObjectBus)
        return BusKit(bus, bus.raw, bus.put_raw)
