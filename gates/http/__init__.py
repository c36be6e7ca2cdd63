"""The HTTP side: the routes ComfyUI and `gates serve` mount, and the standalone app."""
