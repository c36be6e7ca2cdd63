"""ComfyUI entry point: the nodes, their HTTP routes, and the web extension folder.

ComfyUI imports this folder as a package under whatever name it has (`dataset-gates`
included). pytest, run from a folder whose name is not an identifier, imports this file on
its own, with no package: then there is no ComfyUI either, and nothing is registered.
"""

if __package__:
    from .gates.comfy import adapter
    from .gates.comfy.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    # A second copy of the pack (installed twice) reuses the first one's routes and serves no
    # second copy of the frontend extension.
    WEB_DIRECTORY = None if adapter.register() == "duplicate" else "./web"

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
