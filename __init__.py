"""ComfyUI entry point: the nodes, their HTTP routes, and the web extension folder."""
from .gates import comfy_adapter
from .gates.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"
comfy_adapter.register()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
