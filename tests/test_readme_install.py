"""README.md's install, troubleshooting and developer sentences, held to the files they describe."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gates.comfy.nodes import NODE_CLASS_MAPPINGS
from gates.gate.parking import PARK

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
PYPROJECT = (REPO / "pyproject.toml").read_text(encoding="utf-8")
COMFYUI_PROVIDES = {"torch", "numpy", "pillow", "aiohttp"}


def toml_value(key: str) -> str:
    return re.search(rf'^{key} = "([^"]*)"', PYPROJECT, re.M).group(1)


def requirement_names(lines: list[str]) -> set[str]:
    return {
        re.split(r"[<>=~!\[; ]", line.strip(), maxsplit=1)[0].lower()
        for line in lines
        if line.strip() and not line.strip().startswith("#")
    }


def pyproject_dependencies() -> set[str]:
    block = PYPROJECT[PYPROJECT.index("dependencies = [") :]
    return requirement_names(re.findall(r'^\s+"([^"]+)",', block[: block.index("]")], re.M))


def test_registry_install_names_are_the_packs() -> None:
    assert f"`comfy node install {toml_value('name')}`" in README
    assert f"search for\n  **{toml_value('DisplayName')}**" in README
    assert toml_value("PublisherId") and toml_value("version")  # what the Comfy Registry reads


def test_the_clone_url_is_the_repository() -> None:
    assert f"git clone {toml_value('Repository')}\n" in README


def test_requirements_leave_torch_numpy_pillow_and_aiohttp_to_comfyui() -> None:
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert "torch" not in requirement_names(lines)
    assert pyproject_dependencies() - requirement_names(lines) == COMFYUI_PROVIDES
    assert requirement_names(lines) <= pyproject_dependencies()
    assert "leaves torch, numpy,\n  Pillow and aiohttp to ComfyUI" in README


def test_comfyui_brings_what_the_requirements_leave_out() -> None:
    comfy = os.environ.get("COMFYUI_DIR", "").strip()
    if not comfy:
        pytest.skip("set COMFYUI_DIR to check against ComfyUI's own requirements.txt")
    lines = (Path(comfy) / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert requirement_names(lines) >= COMFYUI_PROVIDES


def test_the_nodes_are_under_dataset_gates() -> None:
    assert "under **Dataset Gates** in the node\nlibrary" in README
    assert {node.CATEGORY for node in NODE_CLASS_MAPPINGS.values()} == {"Dataset Gates"}


def test_park_is_the_default_on_timeout() -> None:
    assert "**park** (the\ndefault)" in README
    on_timeout = NODE_CLASS_MAPPINGS["ImageGate"].INPUT_TYPES()["optional"]["on_timeout"]
    assert on_timeout[1]["default"] == PARK == "park"


def developer_commands() -> list[str]:
    section = README[README.index("## Developers") : README.index("## Layout")]
    return re.findall(r"^(pip install .*)$", section, re.M)


def test_the_two_developer_commands_serve_and_test() -> None:
    assert developer_commands() == [
        "pip install -e . && python -m gates serve",
        'pip install -e ".[test]" && python -m pytest',
    ]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "torch==2.13.0" in ci and '-e ".[test]"' in ci and "python3 -m pytest" in ci


def test_the_developer_commands_leave_an_installed_torch_alone(tmp_path: Path) -> None:
    """Each README command's pip step, dry-run where pip sees a torch no index has (as a
    ComfyUI venv's CUDA build is to PyPI): it installs the pack and nothing else. A pin such
    as `torch==2.13.0` in a command would replace that torch, and fail here."""
    site = tmp_path / "site"
    dist = site / "torch-0.0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 0.0.1\n", encoding="utf-8")
    (dist / "RECORD").write_text("", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(site)}
    for command in developer_commands():
        pip_args = shlex.split(command.split("&&")[0])[2:]  # after "pip install"
        report = tmp_path / "report.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--quiet",
                "--no-index",
                "--no-build-isolation",
                "--report",
                str(report),
                *pip_args,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
        installs = {item["metadata"]["name"] for item in json.loads(report.read_text())["install"]}
        assert installs == {"dataset-gates"}, command


def test_the_cli_lines_name_every_command() -> None:
    from gates.cli import build_parser

    block = README[README.index("## Command line") : README.index("## From a script")]
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands <= set(re.findall(r"gates ([a-z]+)", block))
    assert "gates --version" in block


def test_the_changelog_leads_with_the_package_version() -> None:
    """An "Unreleased" section may sit on top (changes not in a release yet); the first
    released section is the package's version."""
    import gates

    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    first = next(line for line in changelog.splitlines() if line.startswith("## ") and line != "## Unreleased")
    assert first == f"## {gates.__version__}"
