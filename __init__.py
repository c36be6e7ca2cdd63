"""ComfyUI entry point: the nodes, their HTTP routes, and the web extension folder."""
from .gates import comfy_adapter
from .gates.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

# A second copy of the pack (installed twice) reuses the first one's routes and serves no
# second copy of the frontend extension.
WEB_DIRECTORY = None if comfy_adapter.register() == "duplicate" else "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
