"""Dataset Gates: a human-in-the-loop Image Gate for ComfyUI and its lossless tensor bus.

Every module here except `comfy_adapter` runs without ComfyUI.
"""
__version__ = "0.1.0"
