"""A bus folder's policy file written as another process (the CLI, a second ComfyUI) would,
without meeting it at once, as `set_policy` does."""

from __future__ import annotations

from pathlib import Path

from gates.bus.local.store import POLICY_FILE, SlotStore
from gates.bus.policy import Policy, policy_to_json


def write_policy(root: Path, policy: Policy) -> None:
    Path(root).mkdir(parents=True, exist_ok=True)
    (Path(root) / POLICY_FILE).write_bytes(policy_to_json(policy))


def read_policy(root: Path) -> Policy:
    return SlotStore(root).policy()
