"""The folders a shared server lets the dataset nodes read and write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gates.dataset.errors import DatasetError, RootRefused
from gates.dataset.roots import ENV_VAR, Roots


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("input/sets/cats", "output", "private"):
        (tmp_path / name).mkdir(parents=True)
    return tmp_path


def test_unset_allows_any_folder(tree: Path) -> None:
    roots = Roots.from_env(environ={})
    assert roots.allowed is None
    assert roots.check(tree / "private", "read") == (tree / "private").resolve()


def test_the_variable_limits_reads_and_writes_to_its_folders(tree: Path) -> None:
    env = {ENV_VAR: os.pathsep.join([str(tree / "input"), "", str(tree / "output")])}
    roots = Roots.from_env(environ=env)
    assert roots.check(tree / "input/sets/cats", "read") == (tree / "input/sets/cats").resolve()
    assert roots.check(tree / "output", "write") == (tree / "output").resolve()
    assert roots.check(tree / "output/new/deeper", "write") == (tree / "output/new/deeper").resolve()
    with pytest.raises(RootRefused, match=f"outside the folders this server may read datasets from .*{ENV_VAR}"):
        roots.check(tree / "private", "read")
    with pytest.raises(RootRefused, match="may save datasets to"):
        roots.check(tree / "input/../private", "write")
    with pytest.raises(RootRefused, match="outside"):
        roots.check(tree / "input_other", "read")  # a sibling sharing the prefix is not inside


def test_defaults_apply_only_when_the_variable_is_unset(tree: Path) -> None:
    defaults = [tree / "input"]
    assert Roots.from_env(defaults, environ={}).allowed == ((tree / "input").resolve(),)
    env = {ENV_VAR: str(tree / "output")}
    assert Roots.from_env(defaults, environ=env).allowed == ((tree / "output").resolve(),)


def test_a_link_inside_an_allowed_folder_leading_out_is_refused(tree: Path) -> None:
    (tree / "input/escape").symlink_to(tree / "private", target_is_directory=True)
    roots = Roots([tree / "input"])
    with pytest.raises(RootRefused, match="escape is outside"):
        roots.check(tree / "input/escape", "read")


def test_an_allowed_folder_reached_through_a_link_is_its_real_path(tree: Path) -> None:
    (tree / "shortcut").symlink_to(tree / "input/sets", target_is_directory=True)
    assert Roots([tree / "input"]).check(tree / "shortcut/cats", "read") == (tree / "input/sets/cats").resolve()


def test_an_empty_path_and_an_empty_allow_list(tree: Path) -> None:
    with pytest.raises(DatasetError, match="no folder given"):
        Roots(None).check("  ", "read")
    with pytest.raises(RootRefused, match="outside"):
        Roots([]).check(tree / "input", "read")


def test_a_relative_folder_is_read_from_the_folder_the_server_runs_in(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the README and the curate_dataset_folder example tell a user to type: `input/dataset`
    is the input folder of the ComfyUI started in `tree`."""
    monkeypatch.chdir(tree)
    assert Roots(None).check("input/sets/cats", "read") == (tree / "input/sets/cats").resolve()
    env = {ENV_VAR: str(tree / "input")}
    assert Roots.from_env(environ=env).check("input/sets", "read") == (tree / "input/sets").resolve()
    with pytest.raises(RootRefused):
        Roots.from_env(environ=env).check("output", "write")
