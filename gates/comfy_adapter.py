"""The one module that touches ComfyUI. Every ComfyUI import happens inside a function, so the
rest of the pack (and its tests, and the command line) imports without ComfyUI present.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from . import ordering
from .gate import Hooks
from .routes import GateRoutes
from .slots import SlotStore
from .waiter import WAITER, Waiter

log = logging.getLogger("dataset_gates")

# The first copy of the pack to load leaves this on PromptServer.instance, so a second copy
# (the pack installed twice under two folder names) can find it: {"folder", "waiter"}.
SHARED_ATTR = "dataset_gates_first_copy"
PACK_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # symlinks kept
_waiter: Waiter = WAITER


def bus_root() -> Path:
    """Slots live under the input directory: ComfyUI wipes its temp directory at startup."""
    import folder_paths
    return Path(folder_paths.get_input_directory()) / "gate_bus"


def store() -> SlotStore:
    """A store for the current input directory; SlotStore is stateless, so nothing is cached."""
    return SlotStore(bus_root())


def _client_id() -> str | None:
    from server import PromptServer
    return PromptServer.instance.client_id


def _prompt_id() -> str | None:
    from comfy_execution.utils import get_executing_context
    context = get_executing_context()
    if context is not None:
        return context.prompt_id
    from server import PromptServer
    return getattr(PromptServer.instance, "last_prompt_id", None)


def _notify(event: str, data: dict[str, Any], client_id: str | None) -> None:
    """To one tab's socket; client_id None reaches every open tab."""
    from server import PromptServer
    PromptServer.instance.send_sync(event, data, sid=client_id)


def _connected(client_id: str) -> bool:
    """Whether a tab with this client id has an open websocket (ComfyUI keeps them by id)."""
    from server import PromptServer
    sockets = getattr(PromptServer.instance, "sockets", None)
    if sockets is None:  # unknown: never let another tab take a pause from a live one
        return True
    ws = sockets.get(client_id)
    return ws is not None and not getattr(ws, "closed", False)


def _interrupted() -> bool:
    import comfy.model_management as mm
    return mm.processing_interrupted()


def _interrupt() -> BaseException:
    """What Stop and Cancel raise; the flag is cleared as ComfyUI's own check does."""
    import comfy.model_management as mm
    mm.interrupt_current_processing(False)
    return mm.InterruptProcessingException()


def blocker() -> Any:
    """A fresh ExecutionBlocker(None): whatever is fed by it silently does not run."""
    from comfy_execution.graph_utils import ExecutionBlocker
    return ExecutionBlocker(None)


def hooks() -> Hooks:
    return Hooks(interrupted=_interrupted, notify=_notify, blocker=blocker,
                 interrupt=_interrupt, prompt_id=_prompt_id, client_id=_client_id)


def waiter() -> Waiter:
    """The paused-gate registry the routes answer from: this copy's, or the first copy's."""
    return _waiter


def register() -> str:
    """At import: mount the routes and the prompt handler on ComfyUI's server, once per process.

    Returns "registered", "duplicate" (another copy of the pack loaded first: this copy reuses
    its routes and waiter and registers nothing) or "no server" (not inside ComfyUI).
    """
    global _waiter
    try:
        from server import PromptServer
    except ImportError:
        return "no server"
    server = getattr(PromptServer, "instance", None)
    if server is None:
        return "no server"
    first = getattr(server, SHARED_ATTR, None)
    if isinstance(first, dict) and first.get("waiter") is not None:  # another copy's Waiter class
        _waiter = first["waiter"]
        if first.get("folder") != PACK_FOLDER:
            log.error("Dataset Gates is installed twice: %s and %s. The first one's routes "
                      "answer the paused gates, and both copies' nodes share them, but "
                      "remove one of the two folders and restart ComfyUI.",
                      first.get("folder"), PACK_FOLDER)
        return "duplicate"
    setattr(server, SHARED_ATTR, {"folder": PACK_FOLDER, "waiter": WAITER})
    GateRoutes(store(), WAITER, connected=_connected).add_to(server.routes)
    add_handler = getattr(server, "add_on_prompt_handler", None)
    if add_handler is not None:
        add_handler(ordering.on_prompt)
    return "registered"
