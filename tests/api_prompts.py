"""Nodes of ComfyUI API-format prompts, for the unit and the end-to-end tests: the pack's
nodes and the core ones they are wired to. A link is [node id, output index]; `extra`
inputs are added as given (another widget, a mask or latent link, `after`)."""

from __future__ import annotations

from typing import Any

Node = dict[str, Any]


def load_image(name: str = "a.png") -> Node:
    return {"class_type": "LoadImage", "inputs": {"image": name}}


def load_latent(name: str) -> Node:
    return {"class_type": "LoadLatent", "inputs": {"latent": name}}


def save_image(images: list, prefix: str = "x") -> Node:
    return {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": prefix}}


def gate(image: Any = None, send: Any = "", get: Any = "", routes: int = 2, **extra: Any) -> Node:
    """An Image Gate; with `image` None nothing is wired to it, so it reads `get`."""
    inputs: dict[str, Any] = {"routes": routes, "send_id": send, "get_id": get, "labels": "", **extra}
    if image is not None:
        inputs["image"] = image
    return {"class_type": "ImageGate", "inputs": inputs}


def bus_save(image: Any, slot: Any, **extra: Any) -> Node:
    return {"class_type": "DatasetGatesBusSave", "inputs": {"image": image, "slot_id": slot, **extra}}


def bus_load(slot: Any, **extra: Any) -> Node:
    return {"class_type": "DatasetGatesBusLoad", "inputs": {"slot_id": slot, **extra}}
