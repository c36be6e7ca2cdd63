"""The bus: named slots of exact tensors, behind one contract (see `contract`).

`open_bus(location)` makes a bus; `SlotBus` is what gates use, `BusAdmin` what the browser,
the command line and the routes use. Backends: `local` (a folder), `memory` (this process),
`object` (an S3-compatible bucket).
"""

from .contract import BusAdmin, SlotBus, SlotData, SlotInfo, SlotStream
from .errors import (
    SlotCorrupt,
    SlotError,
    SlotIndexError,
    SlotMetaTooLarge,
    SlotNotFound,
    SlotTooLarge,
    SlotUnavailable,
    SlotWriteError,
)
from .location import open_bus

__all__ = [
    "BusAdmin",
    "SlotBus",
    "SlotCorrupt",
    "SlotData",
    "SlotError",
    "SlotIndexError",
    "SlotInfo",
    "SlotMetaTooLarge",
    "SlotNotFound",
    "SlotStream",
    "SlotTooLarge",
    "SlotUnavailable",
    "SlotWriteError",
    "open_bus",
]
