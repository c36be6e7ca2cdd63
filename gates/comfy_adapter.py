"""The one module that touches ComfyUI. Every ComfyUI import happens inside a function, so the
rest of the pack (and its tests, and the command line) imports without ComfyUI present.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .gate import Hooks
from .routes import GateRoutes
from .slots import SlotStore
from .waiter import WAITER


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


def _blocker() -> Any:
    from comfy_execution.graph_utils import ExecutionBlocker
    return ExecutionBlocker(None)


def hooks() -> Hooks:
    return Hooks(interrupted=_interrupted, notify=_notify, blocker=_blocker,
                 interrupt=_interrupt, prompt_id=_prompt_id, client_id=_client_id)


def register_routes() -> bool:
    """Mount the routes on ComfyUI's server at import time, as ComfyUI requires."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    if getattr(PromptServer, "instance", None) is None:
        return False
    GateRoutes(store(), WAITER, connected=_connected).add_to(PromptServer.instance.routes)
    return True
