"""The `gates` command line: every command in-process, plus the real `python -m gates` entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import png
import pytest
import torch
from children import run_python
from crafted_slots import CRAFTED, with_header
from PIL import Image
from safetensors.torch import load_file

import gates
import gates.http
from gates import cli, images
from gates.bus.ids import ID_RULE
from gates.bus.local.store import SLOT_FILE

REPO = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def bits_of(t: torch.Tensor) -> bytes:
    """Raw bytes, so bfloat16 and NaN compare exactly."""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def quantize(t: torch.Tensor, bits: int) -> np.ndarray:
    """Independent reference for an exported PNG: float32 math, round half to even."""
    top = np.float32((1 << bits) - 1)
    return np.rint(np.clip(t.float().numpy(), 0, 1) * top).astype(np.int64)


def read_png(path: Path) -> tuple[np.ndarray, int]:
    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    arr = np.vstack([np.asarray(r, dtype=np.int64) for r in rows]).reshape(h, w, info["planes"])
    return arr, info["bitdepth"]


def save_rgb(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr.astype(np.uint8), "RGB").save(path)
    return path


# -- ls ----------------------------------------------------------------------------------------
def test_ls_empty_bus_says_so(capsys, bus):
    bus.mkdir()
    rc, out, err = run(capsys, "--bus", bus, "ls")
    assert rc == 0
    assert out.strip() == f"no slots in {bus}"
    assert str(bus) in err  # the header line goes to stderr


@pytest.mark.parametrize("before", [True, False])
def test_ls_lists_ids_and_shapes(capsys, bus, store, before):
    store.publish("alpha", torch.rand(2, 5, 7, 3))
    store.publish("beta", torch.rand(1, 4, 6, 4).bfloat16(), torch.rand(1, 4, 6))
    argv = ["--bus", bus, "ls"] if before else ["ls", "--bus", bus]
    rc, out, _ = run(capsys, *argv)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == cli.LS_HEADER
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["alpha"][1:6] == ["2", "5x7", "3", "float32", "no"]
    assert rows["beta"][1:6] == ["1", "4x6", "4", "bfloat16", "yes"]


def test_ls_json_parses_and_keeps_stdout_clean(capsys, bus, store):
    store.publish("alpha", torch.rand(2, 5, 7, 3))
    rc, out, err = run(capsys, "ls", "--json", "--bus", bus)
    assert rc == 0
    data = json.loads(out)
    assert [d["id"] for d in data] == ["alpha"]
    assert data[0]["image_shape"] == [2, 5, 7, 3] and data[0]["batch"] == 2
    assert "bus:" in err and "bus:" not in out


@pytest.mark.parametrize("name", ["a list", "dtype a list", "header nested 100000 deep", "meta nested 100000 deep"])
def test_ls_lists_a_crafted_slot_as_damaged(capsys, bus, store, name):
    store.publish("alpha", torch.rand(1, 4, 4, 3))
    (bus / "crafted").mkdir()
    (bus / "crafted" / SLOT_FILE).write_bytes(CRAFTED[name])
    rc, out, err = run(capsys, "--bus", bus, "ls")
    assert rc == 0 and "Traceback" not in err
    assert "ERROR: " in next(line for line in out.splitlines() if line.startswith("crafted"))
    rc, out, _ = run(capsys, "--bus", bus, "ls", "--json")
    assert rc == 0 and {d["id"]: bool(d["error"]) for d in json.loads(out)} == {"alpha": False, "crafted": True}


def test_ls_json_prints_numbers_too_big_for_a_float_as_null(capsys, bus, store):
    store.publish("alpha", torch.rand(1, 4, 4, 3))
    path = bus / "alpha" / SLOT_FILE
    text = '{"big": 1e999, "nan": NaN}'
    path.write_bytes(with_header(path.read_bytes(), lambda h: h["__metadata__"].update(meta=text)))
    for argv in (["ls", "--json"], ["info", "alpha", "--json"], ["info", "alpha"]):
        rc, out, _ = run(capsys, "--bus", bus, *argv)
        assert rc == 0 and "Infinity" not in out and "NaN" not in out
    rc, out, _ = run(capsys, "--bus", bus, "ls", "--json")
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"printed {c}"))[0]["meta"] == {
        "big": None,
        "nan": None,
    }


def test_ls_json_empty_is_empty_list(capsys, bus):
    bus.mkdir()
    rc, out, _ = run(capsys, "--bus", bus, "ls", "--json")
    assert rc == 0 and json.loads(out) == []


def test_ls_and_info_show_a_latent(capsys, bus, store):
    """Only `--json` once showed a slot's latent."""
    latent = {"samples": torch.randn(2, 4, 8, 6, dtype=torch.bfloat16)}
    store.publish("lat", torch.rand(2, 64, 48, 3), latent=latent)
    store.publish("plain", torch.rand(1, 4, 4, 3))
    rc, out, _ = run(capsys, "--bus", bus, "ls")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert out.splitlines()[0].split()[5:7] == ["mask", "latent"]
    assert rows["lat"][5:7] == ["no", "2x4x8x6"] and rows["plain"][5:7] == ["no", "no"]
    rc, out, _ = run(capsys, "--bus", bus, "info", "lat")
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert rc == 0 and fields["latent"].strip() == "[2, 4, 8, 6] bfloat16"
    rc, out, _ = run(capsys, "--bus", bus, "info", "plain")
    assert dict(line.split(":", 1) for line in out.splitlines())["latent"].strip() == "none"


# -- info --------------------------------------------------------------------------------------
def test_info_shows_fields_and_verify(capsys, bus, store):
    s = store.publish("alpha", torch.rand(2, 5, 7, 3), torch.rand(2, 5, 7), meta={"seed": 7})
    rc, out, _ = run(capsys, "--bus", bus, "info", "alpha", "--verify")
    assert rc == 0
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert fields["image"].strip() == "[2, 5, 7, 3] float32"
    assert fields["mask"].strip() == "[2, 5, 7] float32"
    assert fields["checksum"].strip() == s.checksum
    assert '"seed": 7' in fields["meta"]
    assert fields["verify"].strip() == "checksum OK"

    rc, out, _ = run(capsys, "--bus", bus, "info", "alpha", "--json", "--verify")
    data = json.loads(out)
    assert rc == 0 and data["id"] == "alpha" and data["verified"] == "checksum OK"
    assert data["path"] == str(store.slot_dir("alpha"))


def test_info_verify_catches_damaged_tensor_data(capsys, bus, store):
    store.publish("alpha", torch.zeros(1, 8, 8, 3))
    path = bus / "alpha" / SLOT_FILE
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # tensor data sits at the end; the header stays readable
    path.write_bytes(bytes(raw))
    assert run(capsys, "--bus", bus, "info", "alpha")[0] == 0  # header-only: still fine
    rc, out, err = run(capsys, "--bus", bus, "info", "alpha", "--verify")
    assert rc == 1 and out == ""
    assert err.startswith("gates: error: ") and "checksum" in err


# -- export ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 16])
def test_export_png_matches_quantized_tensor(capsys, bus, store, tmp_path, bits):
    image = torch.rand(2, 6, 5, 3)
    image[0, 0, 0] = torch.tensor([-0.5, 1.5, 0.5])  # out of range values are clamped
    mask = torch.rand(2, 6, 5)
    store.publish("alpha", image, mask)
    out_dir = tmp_path / "out" / "nested"
    rc, out, _ = run(capsys, "--bus", bus, "export", "alpha", out_dir, "--bits", str(bits), "--tensors", "none")
    assert rc == 0
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["alpha_0000.png", "alpha_0001.png", "alpha_mask_0000.png", "alpha_mask_0001.png"]
    assert sorted(Path(line).name for line in out.split()) == names
    for i in range(2):
        arr, depth = read_png(out_dir / f"alpha_{i:04d}.png")
        assert depth == bits
        np.testing.assert_array_equal(arr, quantize(image[i], bits))
        arr, depth = read_png(out_dir / f"alpha_mask_{i:04d}.png")
        assert depth == bits
        np.testing.assert_array_equal(arr[:, :, 0], quantize(mask[i], bits))


def test_export_8bit_png_reads_back_with_pillow(capsys, bus, store, tmp_path):
    image = torch.rand(1, 4, 3, 3)
    store.publish("alpha", image)
    assert run(capsys, "--bus", bus, "export", "alpha", tmp_path / "o", "--tensors", "none")[0] == 0
    with Image.open(tmp_path / "o" / "alpha_0000.png") as img:
        assert img.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(img), quantize(image[0], 8))
    assert not (tmp_path / "o" / "alpha_mask_0000.png").exists()  # slot had no mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_export_safetensors_is_bit_exact(capsys, bus, store, tmp_path, dtype):
    image = torch.rand(3, 4, 5, 3).to(dtype)
    mask = torch.rand(1, 4, 5).to(dtype)
    store.publish("alpha", image, mask)
    rc, out, _ = run(capsys, "--bus", bus, "export", "alpha", tmp_path / "o")
    assert rc == 0
    assert str(tmp_path / "o" / "alpha.safetensors") in out.splitlines()
    got = load_file(tmp_path / "o" / "alpha.safetensors")
    assert set(got) == {"image", "mask"}
    for name, want in (("image", image), ("mask", mask)):
        assert got[name].dtype == dtype and got[name].shape == want.shape
        assert bits_of(got[name]) == bits_of(want)


def test_export_safetensors_without_mask_has_only_image(capsys, bus, store, tmp_path):
    store.publish("alpha", torch.rand(1, 4, 5, 3))
    assert run(capsys, "--bus", bus, "export", "alpha", tmp_path / "o")[0] == 0
    assert set(load_file(tmp_path / "o" / "alpha.safetensors")) == {"image"}


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], ids=oct)
def test_export_writes_every_file_with_one_mode(capsys, bus, store, tmp_path, umask):
    """The .safetensors was once 0600 beside 0644 PNGs."""
    store.publish("alpha", torch.rand(2, 4, 4, 3), torch.rand(2, 4, 4))
    old = os.umask(umask)
    try:
        assert run(capsys, "--bus", bus, "export", "alpha", tmp_path / "o")[0] == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "o").iterdir()}
    assert "alpha.safetensors" in modes and len(modes) == 5
    assert set(modes.values()) == {0o666 & ~umask}


def test_export_npy_float32_exact(capsys, bus, store, tmp_path):
    image, mask = torch.rand(2, 4, 5, 3), torch.rand(2, 4, 5)
    store.publish("alpha", image, mask)
    rc, _, err = run(capsys, "--bus", bus, "export", "alpha", tmp_path / "o", "--tensors", "npy")
    assert rc == 0 and "note" not in err
    got = np.load(tmp_path / "o" / "alpha_image.npy")
    assert got.dtype == np.float32 and got.tobytes() == image.numpy().tobytes()
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "alpha_mask.npy"), mask.numpy())
    assert not (tmp_path / "o" / "alpha.safetensors").exists()


def test_export_npy_widens_bfloat16_with_note(capsys, bus, store, tmp_path):
    image = torch.rand(1, 4, 5, 3).bfloat16()
    store.publish("alpha", image)
    rc, _, err = run(capsys, "--bus", bus, "export", "alpha", tmp_path / "o", "--tensors", "npy")
    assert rc == 0
    assert "bfloat16" in err and "float32" in err
    got = np.load(tmp_path / "o" / "alpha_image.npy")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, image.float().numpy())  # widening is exact


def test_export_missing_slot_creates_nothing(capsys, bus, tmp_path):
    bus.mkdir()
    rc, _, err = run(capsys, "--bus", bus, "export", "nope", tmp_path / "o")
    assert rc == 1 and "no slot 'nope'" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bits", [8, 16])
def test_export_to_a_png_name_writes_that_file_and_its_mask_beside_it(capsys, bus, store, tmp_path, bits):
    """`gates export ID out.png` on a one-image slot: out.png (+ out_mask.png), no folder."""
    image, mask = torch.rand(1, 6, 5, 3), torch.rand(1, 6, 5)
    store.publish("alpha", image, mask)
    target = tmp_path / "new" / "out.png"
    rc, out, _ = run(capsys, "--bus", bus, "export", "alpha", target, "--bits", str(bits))
    assert rc == 0
    assert target.is_file() and sorted(p.name for p in target.parent.iterdir()) == ["out.png", "out_mask.png"]
    assert out.splitlines() == [str(target), str(target.parent / "out_mask.png")]
    arr, depth = read_png(target)
    assert depth == bits
    np.testing.assert_array_equal(arr, quantize(image[0], bits))
    arr, _ = read_png(target.parent / "out_mask.png")
    np.testing.assert_array_equal(arr[:, :, 0], quantize(mask[0], bits))


def test_export_to_a_png_name_without_a_mask_writes_one_file(capsys, bus, store, tmp_path):
    store.publish("alpha", torch.rand(1, 4, 3, 3))
    rc, out, _ = run(capsys, "--bus", bus, "export", "alpha", tmp_path / "one.PNG")
    assert rc == 0 and out.splitlines() == [str(tmp_path / "one.PNG")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bus", "one.PNG"]
    with Image.open(tmp_path / "one.PNG") as img:
        assert img.format == "PNG" and img.size == (3, 4)


def test_export_to_a_png_name_keeps_exact_tensors_only_when_asked(capsys, bus, store, tmp_path):
    image = torch.rand(1, 4, 3, 3).bfloat16()
    store.publish("alpha", image)
    rc, out, _ = run(capsys, "--bus", bus, "export", "alpha", tmp_path / "a.png", "--tensors", "safetensors")
    assert rc == 0 and out.splitlines() == [str(tmp_path / "a.png"), str(tmp_path / "a.safetensors")]
    assert bits_of(load_file(tmp_path / "a.safetensors")["image"]) == bits_of(image)


def test_export_a_batch_to_a_png_name_is_a_clear_error_that_writes_nothing(capsys, bus, store, tmp_path):
    store.publish("alpha", torch.rand(3, 4, 3, 3))
    rc, out, err = run(capsys, "--bus", bus, "export", "alpha", tmp_path / "sub" / "out.png")
    assert rc == 1 and out == ""
    assert err == (
        "gates: error: slot 'alpha' holds 3 images; a .png name takes a one-image slot: "
        "give a folder to export a batch\n"
    )
    assert not (tmp_path / "sub").exists()


def test_export_help_says_a_png_name_or_a_folder(capsys):
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "OUT is a folder (created)" in text
    assert "a file name ending in .png, which gets that PNG and NAME_mask.png beside it" in text
    assert "a .png name for a batch is an error" in text


def test_version_prints_the_package_version(capsys):
    import re

    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert gates.__version__ == version
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"gates {version}\n"
    assert _python_m_gates("--version").stdout == f"gates {version}\n"


# -- import ------------------------------------------------------------------------------------
def test_import_round_trip(capsys, bus, store, tmp_path):
    rng = np.random.default_rng(0)
    files = [save_rgb(tmp_path / f"{i}.png", rng.integers(0, 256, (6, 4, 3))) for i in range(3)]
    mask_file = tmp_path / "m.png"
    Image.fromarray(rng.integers(0, 256, (6, 4)).astype(np.uint8), "L").save(mask_file)
    rc, out, _ = run(capsys, "--bus", bus, "import", "shots", *files, "--mask", mask_file)
    assert rc == 0 and "shots" in out
    image, mask = store.load("shots")
    want = torch.cat([images.read_image(f) for f in files])
    assert image.shape == (3, 6, 4, 3) and torch.equal(image, want)
    assert mask.shape == (1, 6, 4) and torch.equal(mask, images.read_mask(mask_file))


def comfy_load_image_mask(path: Path) -> torch.Tensor:
    """ComfyUI's LoadImage mask of an RGBA file (nodes.py, 0.8.0), written out independently."""
    alpha = np.array(Image.open(path).getchannel("A")).astype(np.float32) / 255.0
    return (1.0 - torch.from_numpy(alpha))[None]


def test_import_makes_the_mask_from_alpha_as_comfyui_does(capsys, bus, store, tmp_path):
    """RGBA once lost its alpha and got no mask; now mask = 1 - alpha, bit for bit as LoadImage."""
    rgba = np.random.default_rng(3).integers(0, 256, (6, 4, 4), dtype=np.uint8)
    with_alpha = tmp_path / "cut.png"
    Image.fromarray(rgba, "RGBA").save(with_alpha)
    plain = save_rgb(tmp_path / "plain.png", rgba[:, :, :3])
    bus.mkdir()
    rc, out, err = run(capsys, "--bus", bus, "import", "cut", with_alpha, plain)
    assert rc == 0 and err == ""
    assert ", with mask = 1 - alpha (transparent = masked, as ComfyUI's LoadImage) ->" in out
    image, mask = store.load("cut")
    assert torch.equal(image, torch.cat([images.read_image(with_alpha), images.read_image(plain)]))
    assert mask.dtype == torch.float32 and mask.shape == (2, 6, 4)
    assert torch.equal(mask[:1], comfy_load_image_mask(with_alpha))
    assert not mask[1].any()  # no alpha: nothing masked
    # --mask wins over alpha, and says so
    mask_file = tmp_path / "m.png"
    Image.new("L", (4, 6), 255).save(mask_file)
    rc, out, err = run(capsys, "--bus", bus, "import", "cut2", with_alpha, "--mask", mask_file)
    assert rc == 0 and err == "gates: note: the images' alpha is not used: --mask gives the mask\n"
    assert torch.equal(store.load("cut2")[1], torch.ones(1, 6, 4))


def test_import_refuses_mismatched_sizes(capsys, bus, store, tmp_path):
    a = save_rgb(tmp_path / "a.png", np.zeros((6, 4, 3)))
    b = save_rgb(tmp_path / "b.png", np.zeros((5, 4, 3)))
    rc, out, err = run(capsys, "--bus", bus, "import", "shots", a, b)
    assert rc == 1 and out == ""
    assert err.startswith("gates: error:") and "one size" in err
    assert str(b) in err and "Traceback" not in err
    assert not store.exists("shots")


def test_import_refuses_wrong_mask_count_and_size(capsys, bus, store, tmp_path):
    files = [save_rgb(tmp_path / f"{i}.png", np.zeros((6, 4, 3))) for i in range(3)]
    rc, _, err = run(capsys, "--bus", bus, "import", "shots", *files, "--mask", files[0], files[1])
    assert rc == 1 and "2 mask files for 3 images" in err
    small = tmp_path / "small.png"
    Image.new("L", (2, 2)).save(small)
    rc, _, err = run(capsys, "--bus", bus, "import", "shots", *files, "--mask", small)
    assert rc == 1 and "does not match image size" in err
    assert not store.exists("shots")


def png_header(width: int, height: int, rows: int = 64) -> bytes:
    """A PNG claiming width x height pixels with only `rows` rows of data: what a bomb looks like."""
    import struct
    import zlib as _zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", _zlib.crc32(kind + body))

    raw = _zlib.compress(b"\0" * (1 + 3 * width) * rows, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


def _bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / {"folder": "photos", "missing": "nope.png", "text": "notimage.txt"}.get(kind, f"{kind}.png")
    if kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("hello")
    elif kind == "huge":
        path.write_bytes(png_header(20000, 20000))  # over Pillow's own bomb limit too
    elif kind == "big":
        path.write_bytes(png_header(9000, 8200))
    elif kind == "cut":
        path.write_bytes(png_header(64, 64, rows=64)[:-40])  # its data ends early
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "{p}: no such file"),
        ("folder", "{p}/: a folder, not an image file"),
        ("text", "{p}: not an image (PNG, JPEG or WebP)"),
        ("big", "{p}: 9000x8200 pixels is over the limit of 8192x8192 pixels"),
        ("huge", "{p}: too many pixels, over the limit of 8192x8192 pixels"),
        ("cut", "{p}: the image data is damaged"),
    ],
)
@pytest.mark.parametrize("as_mask", [False, True], ids=["image", "mask"])
def test_import_names_a_bad_file_in_one_plain_line(capsys, bus, tmp_path, kind, message, as_mask):
    """Once: "cannot identify image file <_io.BufferedReader name='notimage.txt'>", "[Errno 21]
    Is a directory", and "not a readable image" for one too large."""
    bad = _bad_file(tmp_path, kind)
    good = save_rgb(tmp_path / "good.png", np.zeros((4, 4, 3)))
    argv = ["import", "shots", good, "--mask", bad] if as_mask else ["import", "shots", bad]
    rc, out, err = run(capsys, "--bus", bus, *argv)
    assert (rc, out) == (1, "")
    assert err == f"gates: error: {message.format(p=bad)}\n"
    assert not (bus / "shots").exists()


def test_import_over_existing_needs_force(capsys, bus, store, tmp_path):
    store.publish("shots", torch.zeros(1, 2, 2, 3))
    f = save_rgb(tmp_path / "a.png", np.full((6, 4, 3), 255))
    rc, _, err = run(capsys, "--bus", bus, "import", "shots", f)
    assert rc == 1 and "already exists" in err and "--force" in err
    assert store.info("shots").image_shape == [1, 2, 2, 3]
    assert run(capsys, "--bus", bus, "import", "shots", f, "--force")[0] == 0
    assert torch.equal(store.load("shots")[0], torch.ones(1, 6, 4, 3))


# -- rm / mv -----------------------------------------------------------------------------------
def test_rm(capsys, bus, store, monkeypatch):
    store.publish("alpha", torch.zeros(1, 2, 2, 3))
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    rc, _, err = run(capsys, "--bus", bus, "rm", "alpha")
    assert rc == 1 and "not deleted" in err and store.exists("alpha")
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert run(capsys, "--bus", bus, "rm", "alpha")[0] == 0
    assert not store.exists("alpha")
    store.publish("beta", torch.zeros(1, 2, 2, 3))
    rc, out, _ = run(capsys, "--bus", bus, "rm", "beta", "-y")
    assert rc == 0 and "deleted 'beta'" in out and store.ids() == []
    rc, _, err = run(capsys, "--bus", bus, "rm", "beta", "-y")
    assert rc == 1 and err == f"gates: error: no slot 'beta' in bus {bus.name!r}\n"  # once the full path


def test_mv(capsys, bus, store):
    image = torch.rand(1, 3, 3, 3)
    store.publish("old", image)
    store.publish("taken", torch.zeros(1, 2, 2, 3))
    rc, _, err = run(capsys, "--bus", bus, "mv", "old", "taken")
    assert rc == 1 and "already exists" in err and "--force" in err
    assert store.ids() == ["old", "taken"]
    assert run(capsys, "--bus", bus, "mv", "old", "new")[0] == 0
    assert store.ids() == ["new", "taken"] and torch.equal(store.load("new")[0], image)
    assert run(capsys, "--bus", bus, "mv", "new", "taken", "--force")[0] == 0
    assert store.ids() == ["taken"] and torch.equal(store.load("taken")[0], image)
    rc, _, err = run(capsys, "--bus", bus, "mv", "gone", "other")
    assert rc == 1 and "no slot 'gone'" in err


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["info", "../x"],
        ["rm", "../x", "-y"],
        ["export", "../x", "OUT"],
        ["import", "../x", "IMG"],
        ["mv", "ok", "../x"],
        ["mv", "../x", "ok"],
    ],
)
def test_invalid_id_is_a_clean_error(capsys, bus, store, tmp_path, argv):
    store.publish("ok", torch.zeros(1, 2, 2, 3))
    img = save_rgb(tmp_path / "img.png", np.zeros((2, 2, 3)))
    argv = [{"OUT": str(tmp_path / "out"), "IMG": str(img)}.get(a, a) for a in argv]
    rc, out, err = run(capsys, "--bus", bus, *argv)
    assert rc == 1 and out == ""
    assert err == f"gates: error: invalid slot id '../x': {ID_RULE}\n"
    assert store.ids() == ["ok"] and not (tmp_path / "x").exists()


def test_missing_slot(capsys, bus):
    bus.mkdir()
    rc, out, err = run(capsys, "--bus", bus, "info", "nope")
    assert rc == 1 and out == ""
    assert err == f"gates: error: no slot 'nope' in bus {bus.name!r}\n"


def test_corrupt_slot_fails_info_but_is_listed(capsys, bus, store):
    store.publish("good", torch.zeros(1, 2, 2, 3))
    (bus / "bad").mkdir()
    (bus / "bad" / SLOT_FILE).write_bytes(b"garbage" * 20)
    rc, out, err = run(capsys, "--bus", bus, "info", "bad")
    assert rc == 1 and out == ""
    assert err.startswith("gates: error: slot 'bad': not a valid Dataset Gates slot") and err.count("\n") == 1
    rc, out, _ = run(capsys, "--bus", bus, "ls")
    assert rc == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"good", "bad"}
    assert "ERROR: slot 'bad': not a valid Dataset Gates slot" in rows["bad"]
    rc, out, _ = run(capsys, "--bus", bus, "ls", "--json")
    errors = {d["id"]: d["error"] for d in json.loads(out)}
    assert errors["good"] is None and "not a valid Dataset Gates slot" in errors["bad"]


@pytest.mark.parametrize("argv", [["export", "x"], ["export", "x", "o", "--bits", "12"], ["bogus"], []])
def test_usage_errors_keep_argparse_status_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "usage: gates" in capsys.readouterr().err


# -- serve -------------------------------------------------------------------------------------
def test_serve_on_a_busy_port_is_a_clean_error(capsys, bus):
    bus.mkdir()
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, _, err = run(capsys, "--bus", bus, "serve", "--port", str(port))
    assert rc == 1 and err == f"gates: error: port {port} is in use: choose another with --port\n"


@pytest.mark.parametrize("port", ["99999", "-1", "65536", "http"])
def test_serve_on_an_impossible_port_is_a_usage_error(capsys, bus, port):
    """99999 and -1 once reached the socket and printed an OverflowError traceback."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["--bus", str(bus), "serve", "--port", port])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"gates serve: error: argument --port: {port!r} is not a port number: give 1-65535 (0 picks a free one)"
    )


def test_serve_on_a_host_it_cannot_listen_on_is_a_clean_error(capsys, bus):
    bus.mkdir()
    rc, _, err = run(capsys, "--bus", bus, "serve", "--host", "192.0.2.1", "--no-auth", "--port", "0")
    assert rc == 1 and "Errno" not in err  # the lines before it warn that 192.0.2.1 is not loopback
    assert (
        err.splitlines()[-1]
        == "gates: error: cannot listen on '192.0.2.1': not an address of this machine; check --host"
    )


def test_serve_calls_browser(capsys, bus, monkeypatch):
    bus.mkdir()
    calls = []
    from gates.http.app import given_token

    fake = types.ModuleType("gates.http.app")
    fake.serve = lambda store, host, port, **options: calls.append((store.location, host, port, options))
    fake.given_token = given_token
    monkeypatch.delenv("DATASET_GATES_TOKEN", raising=False)
    monkeypatch.setitem(sys.modules, "gates.http.app", fake)
    monkeypatch.setattr(gates.http, "app", fake, raising=False)
    monkeypatch.setenv(cli.BUS_ENV, str(bus))
    assert run(capsys, "serve", "--bus", bus, "--port", "9000")[0] == 0
    assert run(capsys, "--bus", bus, "serve", "--host", "0.0.0.0", "--no-auth")[0] == 0
    assert run(capsys, "serve", "--host", "::", "--token", "t" * 16)[0] == 0
    assert [call[1:] for call in calls] == [
        ("127.0.0.1", 9000, {"token": None, "no_auth": False}),
        ("0.0.0.0", 8189, {"token": None, "no_auth": True}),
        ("::", 8189, {"token": "t" * 16, "no_auth": False}),
    ]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--token", "short"], "16 or more"),
        (["--token", "x" * 15 + "!"], "16 or more"),
        (["--token", "x" * 16, "--no-auth"], "contradict"),
    ],
)
def test_serve_bad_token_options_are_clean_errors(capsys, bus, options, message):
    bus.mkdir()
    rc, _, err = run(capsys, "--bus", bus, "serve", "--port", "0", *options)
    assert rc == 1 and err.startswith("gates: error:") and message in err


# -- default bus folder ------------------------------------------------------------------------
def test_default_bus_dir_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv(cli.BUS_ENV, str(tmp_path / "from-env"))
    assert cli.default_bus_dir() == tmp_path / "from-env"


def test_default_bus_dir_comfyui_layout(monkeypatch, tmp_path):
    monkeypatch.delenv(cli.BUS_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    comfy = tmp_path / "ComfyUI"
    fake_file = comfy / "custom_nodes" / "dataset-gates" / "gates" / "cli.py"
    monkeypatch.setattr(cli, "__file__", str(fake_file))
    fallback = tmp_path / "xdg" / "dataset-gates" / "gate_bus"
    assert cli.default_bus_dir() == fallback  # no ComfyUI there yet
    (comfy / "input").mkdir(parents=True)
    assert cli.default_bus_dir() == fallback  # input/ alone is not enough
    (comfy / "main.py").write_text("")
    assert cli.default_bus_dir() == comfy / "input" / "gate_bus"
    monkeypatch.setenv(cli.BUS_ENV, str(tmp_path / "env"))
    assert cli.default_bus_dir() == tmp_path / "env"  # the env var wins


def test_default_bus_dir_xdg_and_home(monkeypatch, tmp_path):
    monkeypatch.delenv(cli.BUS_ENV, raising=False)
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site" / "gates" / "cli.py"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert cli.default_bus_dir() == tmp_path / "home" / ".local" / "share" / "dataset-gates" / "gate_bus"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert cli.default_bus_dir() == tmp_path / "home" / ".local" / "share" / "dataset-gates" / "gate_bus"


def test_main_uses_default_bus(capsys, monkeypatch, tmp_path, bus, store):
    store.publish("alpha", torch.zeros(1, 2, 2, 3))
    monkeypatch.setenv(cli.BUS_ENV, str(bus))
    rc, out, _ = run(capsys, "ls")
    assert rc == 0 and "alpha" in out


# -- the real entry point ----------------------------------------------------------------------
def _python_m_gates(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_python("-m", "gates", *argv, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_python_m_gates_ls(bus, store):
    store.publish("alpha", torch.zeros(1, 3, 4, 3))
    p = _python_m_gates("--bus", bus, "ls")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[1].split()[:3] == ["alpha", "1", "3x4"]
    assert f"bus: {bus}" in p.stderr


def test_python_m_gates_env_var_and_clean_errors(bus, store):
    store.publish("alpha", torch.zeros(1, 3, 4, 3))
    env = {cli.BUS_ENV: str(bus)}
    p = _python_m_gates("ls", "--json", env=env)
    assert p.returncode == 0, p.stderr
    assert [d["id"] for d in json.loads(p.stdout)] == ["alpha"]
    p = _python_m_gates("info", "../x", env=env)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr and ID_RULE in p.stderr


# -- history, pins, policy -----------------------------------------------------------------------
def test_config_history_and_refs(capsys, bus, store, tmp_path):
    rc, out, _ = run(capsys, "--bus", bus, "config", "--keep", "3", "--quota", "1G")
    assert rc == 0 and "3 version(s)" in out and "1.0 GiB" in out
    for v in (1.0, 2.0, 3.0):
        store.publish("h", torch.full((1, 4, 4, 3), v, dtype=torch.bfloat16))
    rc, out, _ = run(capsys, "--bus", bus, "history", "h")
    assert rc == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["h", "h@-1", "h@-2"]
    rc, out, _ = run(capsys, "--bus", bus, "info", "h@-2", "--verify", "--json")
    assert rc == 0 and json.loads(out)["version"] == -2
    rc, out, _ = run(capsys, "--bus", bus, "export", "h@-1", str(tmp_path / "ex"))
    exported = load_file(str(tmp_path / "ex" / "h_-1.safetensors"))["image"]
    assert rc == 0 and exported.dtype == torch.bfloat16 and exported.unique().item() == 2.0
    rc, _, err = run(capsys, "--bus", bus, "info", "h@-3")
    assert rc == 1 and "2 older version" in err
    rc, _, err = run(capsys, "--bus", bus, "config", "--keep", "0")
    assert rc == 1 and "keep must be" in err


def test_pin_unpin_and_quota_from_the_cli(capsys, bus, store):
    store.publish("old", torch.rand(1, 32, 32, 3))
    store.publish("kept", torch.rand(1, 32, 32, 3))
    store.publish("new", torch.rand(1, 32, 32, 3))
    rc, out, _ = run(capsys, "--bus", bus, "pin", "kept")
    assert rc == 0 and "pinned" in out and store.info("kept").pinned
    rc, out, _ = run(capsys, "--bus", bus, "config", "--quota", "1")
    assert rc == 0 and "removed 'old'" in out and "removed 'new'" in out
    assert store.ids() == ["kept"]
    rc, out, _ = run(capsys, "--bus", bus, "unpin", "kept")
    assert rc == 0 and not store.info("kept").pinned
    rc, out, _ = run(capsys, "--bus", bus, "ls")
    assert "versions" in out.splitlines()[0] and "pinned" in out.splitlines()[0]


def test_import_refuses_a_decompression_bomb_before_decoding(capsys, bus, tmp_path):
    """A small PNG claiming 13000x13000 pixels is refused from its header: one error line."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(13000, 13000))  # a few rows: the header is what counts
    rc, _out, err = run(capsys, "--bus", bus, "import", "x", bomb)
    assert rc == 1 and "13000x13000 pixels is over the limit" in err and err.count("\n") == 1
    assert not (bus / "x").exists()


def test_migrate_dry_run_lists_then_migrate_converts(capsys, bus, store):
    from PIL import Image

    (bus / "old").mkdir(parents=True)
    Image.new("RGB", (8, 6), (255, 0, 51)).save(bus / "old" / "image.png")
    rc, out, _ = run(capsys, "--bus", bus, "migrate", "--dry-run")
    assert (rc, out) == (0, "old: would migrate\n") and (bus / "old" / "image.png").is_file()
    rc, out, _ = run(capsys, "--bus", bus, "migrate")
    assert (rc, out) == (0, "old: migrated\n") and not (bus / "old" / "image.png").exists()
    image, _ = store.load("old")
    assert torch.equal(image[0, 0, 0], torch.tensor([1.0, 0.0, 51 / 255], dtype=torch.float32))
    rc, out, _ = run(capsys, "--bus", bus, "migrate")
    assert rc == 0 and out.startswith("nothing to migrate")


# -- bus locations -------------------------------------------------------------------------------
def test_a_location_with_a_scheme_is_refused_and_nothing_is_created(capsys, tmp_path, monkeypatch):
    """`--bus s3://x` once became the folder `s3:/x` (argparse's Path ate a slash) and listed
    an empty bus; every scheme without a backend is refused, naming the locations served."""
    monkeypatch.chdir(tmp_path)
    for argv in (["--bus", "gs://bucket/x", "ls"], ["ls", "--bus", "gs://bucket/x"]):
        rc, out, err = run(capsys, *argv)
        assert rc == 1 and out == ""
        assert err.startswith("gates: error: no bus backend serves gs:// locations") and err.count("\n") == 1
        assert "file:///path" in err and "memory://name" in err and "s3://bucket/prefix" in err
    assert list(tmp_path.iterdir()) == []


def test_bus_expands_a_home_folder(capsys, tmp_path, monkeypatch, store):
    store.publish("alpha", torch.zeros(1, 2, 2, 3))
    monkeypatch.setenv("HOME", str(store.root.parent))
    rc, out, _ = run(capsys, "--bus", "~/bus", "ls")
    assert rc == 0 and "alpha" in out


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def test_mv_of_a_damaged_slot_renames_it_and_says_so(capsys, bus, store):
    """It once renamed the folder, then failed to read the new name and said `error`, exit 1."""
    store.publish("dmg", torch.rand(1, 40, 40, 3))
    _truncate(bus / "dmg" / SLOT_FILE, 1000)
    rc, out, err = run(capsys, "--bus", bus, "mv", "dmg", "dmg2")
    assert rc == 0 and err == ""
    assert out.startswith("renamed 'dmg' -> 'dmg2' (the slot is damaged: not a valid Dataset Gates slot file")
    assert out.count("\n") == 1 and store.ids() == ["dmg2"]
    rc, out, _ = run(capsys, "--bus", bus, "pin", "dmg2")
    assert rc == 0 and out.startswith("'dmg2' is pinned: the quota never removes it (the slot is damaged: ")


def test_mv_onto_its_own_id_says_nothing_changed(capsys, bus, store):
    store.publish("kitty", torch.rand(1, 4, 4, 3))
    rc, out, _ = run(capsys, "--bus", bus, "mv", "kitty", "kitty")
    assert (rc, out) == (0, "'kitty' already has that id: nothing changed\n")
    assert store.ids() == ["kitty"]
    rc, _, err = run(capsys, "--bus", bus, "mv", "ghost", "ghost")
    assert rc == 1 and "no slot 'ghost'" in err


# -- a bus that is not there ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv", [["ls"], ["ls", "--json"], ["info", "x"], ["history", "x"], ["rm", "x", "-y"], ["config"], ["serve"]]
)
@pytest.mark.parametrize("where", ["typo", "rgb.png"])
def test_reading_a_bus_that_is_not_there_is_an_error(capsys, tmp_path, monkeypatch, argv, where):
    """A typo'd --bus, or a file, once listed as an empty bus ("no slots in ...", exit 0) and
    `gates serve` served it."""
    (tmp_path / "rgb.png").write_bytes(b"\x89PNG not really")
    served = []
    monkeypatch.setattr("gates.http.app.serve", lambda *a, **k: served.append(a))
    rc, out, err = run(capsys, "--bus", tmp_path / where, *argv)
    assert rc == 1 and out == "" and not served
    assert err == (
        f"gates: error: no bus at {tmp_path / where}: nothing was ever published there; check --bus "
        "(a gate's send_id, Bus Save or `gates import` creates one)\n"
        if where == "typo"
        else "gates: error: bus 'rgb.png' is a file, not a bus folder: give a folder\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.png"]


def test_import_and_a_config_change_create_a_missing_bus_and_say_so(capsys, tmp_path):
    picture = save_rgb(tmp_path / "a.png", np.zeros((4, 4, 3)))
    rc, out, err = run(capsys, "--bus", tmp_path / "new", "import", "shots", picture)
    assert rc == 0 and out.startswith("published 'shots'")
    assert err == f"gates: note: created the bus {tmp_path / 'new'}\n"
    rc, _, err = run(capsys, "--bus", tmp_path / "new", "import", "more", picture)
    assert rc == 0 and err == ""  # there now: nothing to say
    rc, out, err = run(capsys, "--bus", tmp_path / "other", "config", "--keep", "2")
    assert rc == 0 and "keep:" in out and err == f"gates: note: created the bus {tmp_path / 'other'}\n"
    rc, out, err = run(capsys, "--bus", picture, "import", "shots", picture)
    assert (rc, out) == (1, "") and err == "gates: error: bus 'a.png' is a file, not a bus folder: give a folder\n"


# -- start-up ------------------------------------------------------------------------------------
NO_TENSOR_SCRIPT = """
import sys
from gates.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:  # --version
    rc = exc.code
print("loaded:", sorted(m for m in ("torch", "numpy", "PIL") if m in sys.modules), "rc:", rc)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["ls"],
        ["ls", "--json"],
        ["info", "a"],
        ["info", "a", "--verify"],
        ["history", "a"],
        ["rm", "b", "-y"],
        ["mv", "c", "c2"],
        ["pin", "a"],
        ["unpin", "a"],
        ["config"],
        ["config", "--keep", "2"],
    ],
    ids=" ".join,
)
def test_commands_that_make_no_tensor_start_without_torch(bus, store, argv):
    """Every command once imported torch first (1.4 s of a 1.5 s `gates ls`); those that read
    headers only load neither torch nor numpy nor Pillow (their times: benchmarks/bench_cli.py)."""
    for slot_id in ("a", "b", "c"):
        store.publish(slot_id, torch.rand(1, 4, 4, 3), latent={"samples": torch.rand(1, 4, 1, 1)})
    p = run_python("-c", NO_TENSOR_SCRIPT, "--bus", bus, *argv, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "loaded: [] rc: 0", p.stderr
