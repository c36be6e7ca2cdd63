"""gates/secret_file.py: secrets read only from files their owner alone can read, and made so."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from gates.http.app import given_token
from gates.secret_file import SecretFileError, ensure_secret, read_secret

posix_only = pytest.mark.skipif(os.name != "posix", reason="mode bits are POSIX")


def secret_at(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_private_file_is_read_stripped(tmp_path: Path) -> None:
    assert read_secret(secret_at(tmp_path / "s", "  0123456789abcdef\n")) == "0123456789abcdef"


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o666])
def test_a_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = secret_at(tmp_path / "s", "the secret 0123456789", mode)
    with pytest.raises(SecretFileError, match="chmod 600") as caught:
        read_secret(path)
    assert "the secret" not in str(caught.value)  # the file is named, its content never


@pytest.mark.parametrize("content", ["short", "", "\n\n"])
def test_a_short_secret_is_refused(tmp_path: Path, content: str) -> None:
    with pytest.raises(SecretFileError, match="fewer than 16"):
        read_secret(secret_at(tmp_path / "s", content))


def test_a_missing_file_or_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="cannot read"):
        read_secret(tmp_path / "missing")
    with pytest.raises(SecretFileError):
        read_secret(tmp_path)


@posix_only
def test_ensure_makes_a_private_secret_once(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "park_secret"
    first = ensure_secret(path)
    assert len(first) >= 32 and ensure_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["park_secret"]  # no temporary file left


def test_processes_starting_at_once_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "park_secret"
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(ensure_secret(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len(set(got)) == 1


def test_the_token_serve_is_given(tmp_path: Path) -> None:
    env = {"DATASET_GATES_TOKEN": "from-the-environment-0"}
    assert given_token(None, None, {}) is None
    assert given_token(None, None, env) == "from-the-environment-0"
    assert given_token("from-the-command-line", None, env) == "from-the-command-line"
    path = secret_at(tmp_path / "t", "from-a-file-0123456789\n")
    assert given_token(None, path, env) == "from-a-file-0123456789"
    with pytest.raises(ValueError, match="not both"):
        given_token("from-the-command-line", path, env)
