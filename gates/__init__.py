"""Dataset Gates: a human-in-the-loop Image Gate for ComfyUI and its lossless tensor bus.

Every module here except `comfy.adapter` runs without ComfyUI. A script needs only this:

    import gates
    gates.publish("bus", "ckpt", image, mask)   # exact dtype, shape and bits
    image, mask = gates.load("bus", "ckpt")      # verified
"""

from .api import delete, info, list_slots, load, publish, read
from .bus import SlotCorrupt, SlotData, SlotError, SlotInfo, SlotNotFound, SlotWriteError, open_bus

__version__ = "0.2.0"
__all__ = [
    "SlotCorrupt",
    "SlotData",
    "SlotError",
    "SlotInfo",
    "SlotNotFound",
    "SlotWriteError",
    "__version__",
    "delete",
    "info",
    "list_slots",
    "load",
    "open_bus",
    "publish",
    "read",
]
