"""A worker process on an s3:// bus, for the concurrency and kill -9 tests (tests/test_object_bus.py).

    python tests/s3_worker.py publish LOCATION WRITER COUNT SLOTS   # COUNT publishes over SLOTS slots
    python tests/s3_worker.py forever LOCATION SLOT FIRST SIDE      # publish SLOT until killed

Every image is `image_for(writer, n)`, so a reader can tell exactly which publish it got; the
AWS variables come from the environment, as a real worker's do.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from gates.bus import open_bus


def image_for(writer: int, n: int, side: int = 8) -> torch.Tensor:
    """A batch-1 image whose every value encodes (writer, n): a mixed read cannot match it."""
    g = torch.Generator().manual_seed(writer * 1_000_003 + n)
    return torch.rand(1, side, side, 3, generator=g)


def main(argv: list[str]) -> None:
    if argv[0] == "publish":
        location, writer, count, slots = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        bus = open_bus(location)
        for n in range(count):
            slot = f"s{(n * 7 + writer) % slots:02d}"
            bus.publish(slot, image_for(writer, n), meta={"writer": writer, "n": n})
            print(slot, n, flush=True)
    elif argv[0] == "forever":
        location, slot, first, side = argv[1], argv[2], int(argv[3]), int(argv[4])
        bus = open_bus(location)
        n = first
        while True:
            print(n, flush=True)  # about to publish n
            bus.publish(slot, image_for(0, n, side), meta={"writer": 0, "n": n})
            n += 1


if __name__ == "__main__":
    main(sys.argv[1:])
