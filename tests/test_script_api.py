"""The script API that README.md shows: the README's own script runs, and the API round-trips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from children import run_python

import gates

REPO = Path(__file__).resolve().parents[1]


def readme_script() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## From a script") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_script_checkpoints_and_reloads_a_batch(tmp_path: Path) -> None:
    script = readme_script() + (
        "assert image.shape == (4, 64, 64, 3) and mask.shape == (4, 64, 64)\n"
        "print(gates.info('my_bus', 'batch-1').latent_shape)\n"
    )
    run = run_python("-c", script, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[4, 4, 8, 8]"
    assert (tmp_path / "my_bus" / "batch-1" / "slot.safetensors").is_file()


def test_the_api_round_trips_exactly_and_names_its_functions(tmp_path: Path) -> None:
    assert {"publish", "load", "read", "info", "list_slots", "delete"} <= set(gates.__all__)
    image = torch.rand(2, 8, 6, 3).to(torch.bfloat16)
    samples = torch.randn(2, 4, 1, 1)
    info = gates.publish(tmp_path, "s", image, latent={"samples": samples}, meta={"k": 1})
    assert info.batch == 2 and info.meta == {"k": 1}
    got, mask = gates.load(tmp_path, "s")
    assert got.dtype == torch.bfloat16 and torch.equal(got.view(torch.int16), image.view(torch.int16))
    assert torch.equal(mask, torch.zeros(2, 8, 6))
    assert torch.equal(gates.read(tmp_path, "s").latent["samples"], samples)
    assert [s.id for s in gates.list_slots(tmp_path)] == ["s"]
    assert gates.delete(tmp_path, "s") > 0
    with pytest.raises(gates.SlotNotFound):
        gates.info(tmp_path, "s")


def test_every_exported_function_documents_args_returns_or_an_example() -> None:
    for name in ("publish", "load", "read", "info", "list_slots", "delete"):
        doc = getattr(gates, name).__doc__ or ""
        assert "Example:" in doc, name


def test_a_location_with_a_scheme_is_refused_and_nothing_is_created(tmp_path: Path, monkeypatch) -> None:
    """`gates.publish("s3://bucket/x", ...)` once made a local folder named `s3:`; a scheme
    no backend serves is refused the same way."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"no bus backend serves gs:// locations; use a folder path"):
        gates.publish("gs://bucket/x", "slot", torch.rand(1, 4, 4, 3))
    with pytest.raises(ValueError, match="gs://"):
        gates.list_slots("gs://bucket/x")
    assert list(tmp_path.iterdir()) == []
