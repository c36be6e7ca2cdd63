"""A small stand-in for the ComfyUI modules the pack touches, so the nodes run in CI.

It mirrors only what gates/comfy_adapter.py uses, with the same names and behaviour as
ComfyUI 0.8.0: folder_paths.get_input_directory, get_user_directory and
get_system_user_directory, server.PromptServer.instance (client_id,
routes, send_sync, last_prompt_id, sockets, add_on_prompt_handler, trigger_on_prompt, number,
prompt_queue.put), execution's validate_prompt and SENSITIVE_EXTRA_DATA_KEYS,
comfy_execution's ExecutionBlocker and get_executing_context, and comfy.model_management's
interrupt flag and exception.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import types
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]


class ExecutionBlocker:
    def __init__(self, message: Any):
        self.message = message


class InterruptProcessingException(Exception):
    pass


class FakePromptQueue:
    def __init__(self) -> None:
        self.items: list[tuple] = []

    def put(self, item: tuple) -> None:
        self.items.append(item)


class FakePromptServer:
    def __init__(self) -> None:
        self.client_id: str | None = "tab-1"
        self.last_prompt_id = "prompt-1"
        self.routes = web.RouteTableDef()
        self.sockets: dict[str, Any] = {}  # client id -> open websocket
        self.sent: list[tuple[str, dict, str | None]] = []
        self.on_send = lambda event, data: None
        self.on_prompt_handlers: list[Any] = []
        self.number = 0
        self.prompt_queue = FakePromptQueue()

    def add_on_prompt_handler(self, handler: Any) -> None:
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data: dict) -> dict:
        """As server.py: each handler's result feeds the next; an exception is only logged."""
        for handler in self.on_prompt_handlers:
            try:
                json_data = handler(json_data)
            except Exception:
                logging.warning("[ERROR] An error occurred during the on_prompt_handler processing")
        return json_data

    def send_sync(self, event: str, data: dict, sid: str | None = None) -> None:
        self.sent.append((event, data, sid))
        self.on_send(event, data)


class ComfyStandIn:
    """Installs the fake modules into sys.modules and loads the pack as ComfyUI would."""

    def __init__(self, input_dir: Path):
        self.input_dir = input_dir
        self.user_dir = input_dir.parent / "user"
        self.server = FakePromptServer()
        self.interrupt_flag = threading.Event()
        self.modules = self._modules()

    def _modules(self) -> dict[str, types.ModuleType]:
        folder_paths = types.ModuleType("folder_paths")
        folder_paths.get_input_directory = lambda: str(self.input_dir)
        folder_paths.get_user_directory = lambda: str(self.user_dir)
        # a "system user" folder: ComfyUI's HTTP routes never serve one ("__" + name)
        folder_paths.get_system_user_directory = lambda name="system": str(self.user_dir / f"__{name}")

        server = types.ModuleType("server")
        server.PromptServer = type("PromptServer", (), {"instance": self.server})

        comfy_execution = types.ModuleType("comfy_execution")
        graph_utils = types.ModuleType("comfy_execution.graph_utils")
        graph_utils.ExecutionBlocker = ExecutionBlocker
        utils = types.ModuleType("comfy_execution.utils")
        utils.get_executing_context = lambda: types.SimpleNamespace(
            prompt_id="prompt-ctx", node_id="1", list_index=None
        )

        execution = types.ModuleType("execution")
        execution.SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
        self.validation = (True, None, ["out"], {})  # what validate_prompt answers

        async def validate_prompt(prompt_id: str, prompt: dict, partial: Any) -> tuple:
            self.validated = (prompt_id, prompt, partial)
            return self.validation

        execution.validate_prompt = validate_prompt

        comfy = types.ModuleType("comfy")
        mm = types.ModuleType("comfy.model_management")
        mm.InterruptProcessingException = InterruptProcessingException
        mm.processing_interrupted = self.interrupt_flag.is_set

        def interrupt_current_processing(value: bool = True) -> None:
            (self.interrupt_flag.set if value else self.interrupt_flag.clear)()

        mm.interrupt_current_processing = interrupt_current_processing
        comfy.model_management = mm
        return {
            "folder_paths": folder_paths,
            "server": server,
            "comfy_execution": comfy_execution,
            "comfy_execution.graph_utils": graph_utils,
            "comfy_execution.utils": utils,
            "comfy": comfy,
            "comfy.model_management": mm,
            "execution": execution,
        }

    def load_pack(self, name: str = "dataset_gates_pack", root: Path = REPO) -> types.ModuleType:
        """Import the repository root (or `root`, e.g. a symlink to it in a custom_nodes
        folder) the way ComfyUI's load_custom_node does."""
        spec = importlib.util.spec_from_file_location(
            name, root / "__init__.py", submodule_search_locations=[str(root)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
