"""The pack works from a folder of any name, as the README's git clone promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from children import run_python
from comfy_standin import REPO, ComfyStandIn


def _copy_named(tmp_path: Path, name: str) -> Path:
    """The tracked files of this checkout in a folder called `name`, as a clone would be."""
    files = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    )
    dest = tmp_path / name
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


@pytest.mark.parametrize("folder", ["dataset-gates", "ComfyUI-Dataset-Gates", "dataset.gates"])
def test_comfyui_loads_the_pack_from_a_folder_of_any_name(tmp_path, monkeypatch, folder):
    """The README: git clone into any folder name. ComfyUI imports a folder under its path with
    every '.' replaced by '_x_' (nodes.load_custom_node)."""
    clone = _copy_named(tmp_path, folder)
    standin = ComfyStandIn(tmp_path / "input")
    for name, module in standin.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    module_name = str(clone).replace(".", "_x_")
    pack = standin.load_pack(module_name, clone)
    try:
        assert {"ImageGate", "DatasetGatesBusSave", "DatasetGatesBusLoad"} <= set(pack.NODE_CLASS_MAPPINGS)
        assert pack.WEB_DIRECTORY == "./web"
    finally:
        for name in [m for m in sys.modules if m.startswith(module_name)]:
            monkeypatch.delitem(sys.modules, name)


def test_the_test_command_passes_in_a_clone_named_dataset_gates(tmp_path):
    """pytest imports the root __init__.py on its own there; it must not fail every test."""
    clone = _copy_named(tmp_path, "dataset-gates")
    run = run_python("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gate.py", cwd=clone, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "error" not in run.stdout.lower()
