"""The folder bus: slots as folders of one local (or mounted) directory. See `store`."""

from .store import SlotStore

__all__ = ["SlotStore"]
