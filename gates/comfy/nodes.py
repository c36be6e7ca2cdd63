"""The ComfyUI nodes. Thin on purpose: the work is in gate.py and slots.py."""

from __future__ import annotations

from typing import Any

import torch

from ..bus.ids import parse_ref, validate_id
from ..dataset.page import Page
from ..gate.captions import CAPTIONS_TYPE, SPLITS, captions_from_text, check_captions
from ..gate.pages import PAGE_TYPE, check_page, route_page
from ..gate.parking import ANSWER_INPUT, ON_TIMEOUT, PARK
from ..gate.run import MAX_ROUTES, run_gate
from ..gate.split import DECISIONS_TYPE, Decisions, format_indices, split_latent, split_mask, take
from ..gate.text import PASS, TEXT_ON_TIMEOUT, run_text_gate
from . import adapter, dataset_nodes
from .ordering import AFTER, AFTER_KEYS, HIDDEN_AFTER, after_input

CATEGORY = "Dataset Gates"
MAX_TIMEOUT_S = 7 * 24 * 3600
ANY = "*"  # ComfyUI's any type: validate_node_input lets any link in or out of it


def _timeout_input() -> tuple[str, dict[str, Any]]:
    return (
        "INT",
        {"default": 0, "min": 0, "max": MAX_TIMEOUT_S, "tooltip": "seconds to wait for an answer; 0 = forever"},
    )


def _ordering(inputs: dict[str, Any]) -> dict[str, Any]:
    """Add the ordering inputs (see gates/ordering.py): `after`, a socket that accepts
    anything and only orders, and hidden spares for the links the pack adds itself."""
    inputs.setdefault("optional", {})[AFTER] = after_input()
    inputs.setdefault("hidden", {}).update({key: after_input() for key in HIDDEN_AFTER})
    return inputs


def _check_id(name: str, value: str | None, reading: bool, required: bool = False) -> bool | str:
    """Queue-time check, so a typo fails before anything runs; reads may name 'id@-N'.

    ComfyUI passes None for an input fed by a link (e.g. a primitive node): its value is
    unknown until the run, where the node checks it."""
    if value is None:
        return True
    if not value.strip():
        return f"{name}: a slot id is required" if required else True
    try:
        (parse_ref if reading else validate_id)(value.strip())
    except ValueError as exc:
        return f"{name}: {exc}"
    return True


class ImageGate:
    """Pause the run, show the image, and send it down the route a person clicks.

    Caching: the gate always runs (IS_CHANGED is NaN), so every queue pauses again even when
    nothing upstream changed; upstream nodes stay cached, and the chosen branch runs again
    because its input came from a fresh decision.
    """

    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("MASK",) + ("IMAGE",) * MAX_ROUTES + (DECISIONS_TYPE, "LATENT", CAPTIONS_TYPE)
    RETURN_NAMES = ("mask", *tuple(f"route_{i + 1}" for i in range(MAX_ROUTES)), "decisions", "latent", "captions")
    DESCRIPTION = (
        "Pauses with the batch in the node until you pick a route for each image; each "
        "route output carries the images sent down it, in batch order, and a route "
        "with none is blocked. mask, latent and captions carry the whole batch; decisions "
        "carries each image's route and caption, for Gate Split. With captions wired, each "
        "image's caption shows under it, editable, and leaves as edited. With a Dataset Load's page "
        "wired, each file's route is kept in the dataset's journal. send_id publishes what passed "
        "to a lossless slot; with no image wired, get_id resumes from a slot. With a "
        "timeout, an unanswered pause does what on_timeout says: park (store the "
        "batch and this run in a slot, end the run with every route blocked; resume "
        "it from the bus browser), stop, or send every image down one route."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return _ordering(
            {
                "required": {"routes": ("INT", {"default": 2, "min": 1, "max": MAX_ROUTES})},
                "optional": {
                    "image": ("IMAGE",),
                    "mask": ("MASK", {"tooltip": "passed on unless a mask is painted at the gate"}),
                    "send_id": ("STRING", {"default": "", "tooltip": "publish what passes to this slot"}),
                    "get_id": (
                        "STRING",
                        {"default": "", "tooltip": "with no image wired, load this slot (id@-1: the version before)"},
                    ),
                    "labels": ("STRING", {"default": "", "tooltip": "route labels, comma separated"}),
                    "latent": (
                        "LATENT",
                        {"tooltip": "carried along with the batch, published with send_id, resumed with get_id"},
                    ),
                    "timeout": _timeout_input(),
                    "on_timeout": (
                        list(ON_TIMEOUT),
                        {
                            "default": PARK,
                            "tooltip": "park: store the batch and this "
                            "run in a slot to resume later; stop; "
                            "or send every image down a route",
                        },
                    ),
                    "captions": (
                        CAPTIONS_TYPE,
                        {"tooltip": "one caption per image (or one for all), shown under each image to edit"},
                    ),
                    "page": (
                        PAGE_TYPE,
                        {
                            "tooltip": "a Dataset Load's page (with its image): its captions are shown, and each "
                            "file's decision is kept in the dataset's journal"
                        },
                    ),
                },
                # set only by Resume, for a parked batch decided in the slot browser (no widget)
                "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT", ANSWER_INPUT: ("STRING",)},
            }
        )

    @classmethod
    def IS_CHANGED(cls, **kwargs: Any) -> float:
        return float("nan")

    @classmethod
    def VALIDATE_INPUTS(cls, get_id: str = "", send_id: str = "") -> bool | str:
        """Both ids before the queue: a bad send_id must not wait until everything upstream has
        run. ComfyUI attaches the returned error to every input named here (one message per
        input), so each message starts with the field at fault ("send_id: ...")."""
        checks = (_check_id("get_id", get_id, reading=True), _check_id("send_id", send_id, reading=False))
        errors = [error for error in checks if isinstance(error, str)]
        return "; ".join(errors) if errors else True

    def run(self, unique_id: str, **inputs: Any) -> tuple:
        """`inputs` are INPUT_TYPES' by name, run_gate's keywords (an unwired optional input is
        left out and takes run_gate's default); the ordering sockets only order, so they stop here."""
        return run_gate(
            store=adapter.store(),
            waiter=adapter.waiter(),
            hooks=adapter.hooks(),
            node=str(unique_id),
            **{name: value for name, value in inputs.items() if name not in AFTER_KEYS},
        )


class BusSave:
    """Checkpoint a batch (and its LATENT) to a slot without pausing; both pass through."""

    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE", "LATENT")
    RETURN_NAMES = ("image", "latent")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return _ordering(
            {
                "required": {"image": ("IMAGE",), "slot_id": ("STRING", {"default": "checkpoint"})},
                "optional": {"mask": ("MASK",), "latent": ("LATENT", {"tooltip": "stored with the image, exactly"})},
                "hidden": {"unique_id": "UNIQUE_ID"},
            }
        )

    @classmethod
    def VALIDATE_INPUTS(cls, slot_id: str = "") -> bool | str:
        return _check_id("slot_id", slot_id, reading=False, required=True)

    def save(
        self,
        image: torch.Tensor,
        slot_id: str,
        unique_id: str = "",
        mask: torch.Tensor | None = None,
        latent: dict[str, Any] | None = None,
        **ordering: Any,
    ) -> dict[str, Any]:
        hooks = adapter.hooks()
        info = adapter.store().publish(
            slot_id.strip(),
            image,
            mask,
            latent=latent,
            meta={"node": str(unique_id), "prompt_id": hooks.prompt_id(), "source": "bus_save"},
        )
        text = f"{info.id}: {info.batch} x {info.image_shape[1]}x{info.image_shape[2]} {info.image_dtype}"
        if info.latent_shape:
            text += f", latent {'x'.join(str(n) for n in info.latent_shape)}"
        return {"ui": {"text": [text]}, "result": (image, latent if latent is not None else adapter.blocker())}


class BusLoad:
    """Load a slot exactly as it was published; re-runs only when the slot file changes.
    The latent output is blocked when the slot holds no latent."""

    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "MASK", "INT", "LATENT")
    RETURN_NAMES = ("image", "mask", "batch_size", "latent")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return _ordering({"required": {"slot_id": ("STRING", {"default": "checkpoint"})}})

    @classmethod
    def IS_CHANGED(cls, slot_id: str | None = "", **ordering: Any) -> str | float:
        """ComfyUI passes the raw ordering links here too; they do not change the slot. A
        slot_id fed by a link arrives as None: unknown, so the load always runs."""
        if slot_id is None:
            return float("nan")
        try:
            return adapter.store().fingerprint(parse_ref(slot_id.strip())[0])
        except ValueError:
            return "invalid"

    @classmethod
    def VALIDATE_INPUTS(cls, slot_id: str = "") -> bool | str:
        return _check_id("slot_id", slot_id, reading=True, required=True)

    def load(self, slot_id: str, **ordering: Any) -> tuple:
        data = adapter.store().read(slot_id.strip())
        b, h, w, _ = data.image.shape
        mask = data.mask if data.mask is not None else torch.zeros((b, h, w), dtype=torch.float32)
        return (data.image, mask, int(b), data.latent if data.latent is not None else adapter.blocker())


class GateSplit:
    """The images, masks and latents of one route, cut by a gate's per-image decisions."""

    CATEGORY = CATEGORY
    FUNCTION = "split"
    RETURN_TYPES = ("IMAGE", "MASK", "LATENT", "STRING", "INT", CAPTIONS_TYPE, PAGE_TYPE)
    RETURN_NAMES = ("image", "mask", "latent", "indices", "count", "captions", "page")
    DESCRIPTION = (
        "Takes a gate's decisions and gives the sub-batch of image, mask and latent "
        'that went down one route, in batch order, with their batch indices ("0,2,5") '
        "and count, their captions as they left the gate, and their part of a dataset page. "
        "A mask or latent of batch 1 is shared, not indexed. A route no image took, an input "
        "left unwired, and captions when the gate had none, are blocked."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"decisions": (DECISIONS_TYPE,), "route": ("INT", {"default": 1, "min": 1, "max": MAX_ROUTES})},
            "optional": {"image": ("IMAGE",), "mask": ("MASK",), "latent": ("LATENT",), "page": (PAGE_TYPE,)},
        }

    def split(
        self,
        decisions: Decisions,
        route: int,
        image: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        latent: dict[str, Any] | None = None,
        page: Page | None = None,
    ) -> tuple:
        blocker = adapter.blocker
        indices = decisions.indices(route)
        if not indices:
            return tuple(blocker() for _ in self.RETURN_TYPES)
        b = decisions.batch
        return (
            take(image, indices, b) if image is not None else blocker(),
            split_mask(mask, indices, b) if mask is not None else blocker(),
            split_latent(latent, indices, b) if latent is not None else blocker(),
            format_indices(indices),
            len(indices),
            captions if (captions := decisions.captions_of(indices)) is not None else blocker(),
            route_page(check_page(page, b), decisions, route) if page is not None else blocker(),
        )


class Captions:
    """Captions for a gate from a STRING: one per line, or one for every image."""

    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (CAPTIONS_TYPE,)
    RETURN_NAMES = ("captions",)
    DESCRIPTION = (
        "Makes the captions an Image Gate shows under its images from text: one caption per "
        "line (the first line for the first image), or the whole text as one caption for every image."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "text": ("STRING", {"multiline": True, "default": ""}),
                "split": (list(SPLITS), {"default": SPLITS[0]}),
            }
        }

    def build(self, text: str, split: str) -> tuple[list[str]]:
        captions = captions_from_text(text, split)
        return (check_captions(captions, len(captions)),)


class TextGate:
    """Pause on a string, show it in the node to edit, and pass it on.

    Caching: like the Image Gate it always runs, so every queue pauses again."""

    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("STRING", ANY)
    RETURN_NAMES = ("text", "signal")
    DESCRIPTION = (
        "Pauses with the text in the node, editable, until you pass it on (Send, or Enter) "
        "or stop the run. signal takes any link, only to order this gate after its source, "
        "and passes it on when the text passes (the text itself when nothing is wired). "
        "With a timeout, an unanswered pause passes the text as it came, or stops."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"text": ("STRING", {"forceInput": True})},
            "optional": {
                "signal": (ANY, {"tooltip": "any link: this gate runs after it, and passes it on"}),
                "timeout": _timeout_input(),
                "on_timeout": (
                    list(TEXT_ON_TIMEOUT),
                    {"default": PASS, "tooltip": "pass the text as it came, or stop"},
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs: Any) -> float:
        return float("nan")

    def run(self, text: str, unique_id: str, **optional: Any) -> tuple[str, Any]:
        return run_text_gate(waiter=adapter.waiter(), hooks=adapter.hooks(), node=str(unique_id), text=text, **optional)


NODE_CLASS_MAPPINGS = {
    "ImageGate": ImageGate,
    "DatasetGatesBusSave": BusSave,
    "DatasetGatesBusLoad": BusLoad,
    "DatasetGatesSplit": GateSplit,
    "DatasetGatesCaptions": Captions,
    "DatasetGatesTextGate": TextGate,
    **dataset_nodes.NODE_CLASS_MAPPINGS,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ImageGate": "Image Gate (Manual Router)",
    "DatasetGatesBusSave": "Bus Save (Dataset Gates)",
    "DatasetGatesBusLoad": "Bus Load (Dataset Gates)",
    "DatasetGatesSplit": "Gate Split (Dataset Gates)",
    "DatasetGatesCaptions": "Captions from Text (Dataset Gates)",
    "DatasetGatesTextGate": "Text Gate (Manual Pass)",
    **dataset_nodes.NODE_DISPLAY_NAME_MAPPINGS,
}
