"""The one module that touches ComfyUI. Every ComfyUI import happens inside a function, so the
rest of the pack (and its tests, and the command line) imports without ComfyUI present.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..bus import BusAdmin, open_bus
from ..gate.run import Hooks
from ..gate.waiter import WAITER, Waiter
from ..http.routes import GateRoutes, PromptRejected
from ..http.workers import NAME_VAR as WORKER_NAME_VAR
from . import ordering
from .park_secret import park_secret
from .resume import resume_prompt

log = logging.getLogger("dataset_gates")

# The first copy of the pack to load leaves this on PromptServer.instance, so a second copy
# (the pack installed twice under two folder names) can find it: {"folder", "waiter"}.
SHARED_ATTR = "dataset_gates_first_copy"
SECRET_FOLDER = "dataset_gates"  # user/__dataset_gates: a ComfyUI "system user" folder
PACK_FOLDER = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # symlinks kept
_waiter: Waiter = WAITER


BUS_ENV = "DATASET_GATES_BUS"  # a bus elsewhere: a folder, or s3://bucket/prefix for many machines


def bus_root() -> Path:
    """Slots live under the input directory: ComfyUI wipes its temp directory at startup."""
    import folder_paths

    return Path(folder_paths.get_input_directory()) / "gate_bus"


def store() -> BusAdmin:
    """`$DATASET_GATES_BUS` when set (so workers on many machines share one bucket), else the
    bus of the current input directory; a bus holds no state, so nothing is cached."""
    return open_bus(os.environ.get(BUS_ENV) or bus_root())


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


def _park_secret() -> bytes | None:
    """This ComfyUI's park secret (see park_secret); None, with the reason logged, when the
    one configured cannot be used: runs then park unsealed and Resume refuses every one."""
    import folder_paths

    system_folder = getattr(folder_paths, "get_system_user_directory", None)  # never served over HTTP
    folder = (
        system_folder(SECRET_FOLDER) if system_folder else Path(folder_paths.get_user_directory(), "__" + SECRET_FOLDER)
    )
    try:
        return park_secret(Path(folder))
    except (OSError, ValueError) as exc:
        log.error("Dataset Gates: no usable park secret: %s", exc)
        return None


def worker_name() -> str:
    """This worker's name in the runs it parks: DATASET_GATES_WORKER, else host:port."""
    import socket

    from server import PromptServer

    named = os.environ.get(WORKER_NAME_VAR, "").strip()
    if named:
        return named[:100]
    port = getattr(PromptServer.instance, "port", None)
    return f"{socket.gethostname()}:{port}" if port else socket.gethostname()


def _resume_prompt(meta: dict[str, Any], slot_id: str, answer: dict[str, Any] | None) -> dict[str, Any]:
    """resume_prompt, checked against this ComfyUI's park secret."""
    return resume_prompt(meta, slot_id, _park_secret(), answer)


def hooks() -> Hooks:
    return Hooks(
        interrupted=_interrupted,
        notify=_notify,
        blocker=blocker,
        interrupt=_interrupt,
        prompt_id=_prompt_id,
        client_id=_client_id,
        park_secret=_park_secret,
        worker=worker_name,
    )


async def queue_prompt(prompt: dict[str, Any], client_id: str | None) -> str:
    """Queue an API prompt exactly as ComfyUI's POST /prompt does (server.py post_prompt):
    the on-prompt handlers (the pack's ordering among them), validate_prompt, the queue
    number, extra_data with the client id (so the pause reaches that tab) and create_time.
    Returns the new prompt id; PromptRejected with ComfyUI's node_errors if it is invalid."""
    import time
    import uuid

    import execution
    from server import PromptServer

    server = PromptServer.instance
    json_data: dict[str, Any] = {"prompt": prompt}
    if client_id:
        json_data["client_id"] = client_id
    json_data = server.trigger_on_prompt(json_data)
    number = server.number
    server.number += 1
    prompt = json_data["prompt"]
    prompt_id = str(uuid.uuid4())
    valid = await execution.validate_prompt(prompt_id, prompt, None)
    if not valid[0]:
        error = valid[1] if isinstance(valid[1], dict) else {"message": str(valid[1])}
        message = ": ".join(str(part) for part in (error.get("message"), error.get("details")) if part)
        log.warning("Dataset Gates: the resumed prompt is invalid: %s", valid[1])
        raise PromptRejected(message or "ComfyUI refused the prompt", valid[3])
    extra_data = dict(json_data.get("extra_data") or {})
    if "client_id" in json_data:
        extra_data["client_id"] = json_data["client_id"]
    sensitive = {key: extra_data.pop(key) for key in execution.SENSITIVE_EXTRA_DATA_KEYS if key in extra_data}
    extra_data["create_time"] = int(time.time() * 1000)
    server.prompt_queue.put((number, prompt_id, prompt, extra_data, valid[2], sensitive))
    return prompt_id


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
            log.error(
                "Dataset Gates is installed twice: %s and %s. The first one's routes "
                "answer the paused gates, and both copies' nodes share them, but "
                "remove one of the two folders and restart ComfyUI.",
                first.get("folder"),
                PACK_FOLDER,
            )
        return "duplicate"
    setattr(server, SHARED_ATTR, {"folder": PACK_FOLDER, "waiter": WAITER})
    GateRoutes(store(), WAITER, connected=_connected, queue_prompt=queue_prompt, resume_prompt=_resume_prompt).add_to(
        server.routes
    )
    add_handler = getattr(server, "add_on_prompt_handler", None)
    if add_handler is not None:
        add_handler(ordering.on_prompt)
    return "registered"
