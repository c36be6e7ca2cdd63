"""What the bus reports when it cannot do what was asked. Every message names the slot and
never a server path, so it can go straight to a web page or a terminal.
"""

from __future__ import annotations


class SlotError(Exception):
    """Base for every failure the store reports."""


class SlotNotFound(SlotError, LookupError):
    """No such slot, or no such kept version."""


class SlotCorrupt(SlotError):
    """The slot's files exist but are not a valid slot: damaged, crafted, or not ours."""


class SlotWriteError(SlotError, OSError):
    """A write failed (full disk, permissions, a lock held too long); nothing was changed."""


class SlotIndexError(SlotError, ValueError):
    """A batch index out of range: the caller's mistake, not damage."""


class SlotTooLarge(SlotError, ValueError):
    """A render or decode was refused before it started because it would cost too much memory."""


class SlotMetaTooLarge(SlotError, ValueError):
    """The meta given to a publish would make a header too large to read back; nothing written."""


class SlotUnavailable(SlotError, OSError):
    """The storage could not be reached, or kept failing, after every retry (an object store
    down, a network fault): nothing is wrong with the slot, and nothing was changed."""
