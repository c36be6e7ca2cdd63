"""Decoding dataset files to exact pixels: every format and mode, orientation, masks, and every
way a file can be bad, each a clear per-file error."""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_files import jpeg, noise, palette_png, pillow_levels, png8, png16, webp
from PIL import Image, ImageFile, ImageOps

from gates.dataset.decode import decode_file, decode_files, orient, pixel_digest
from gates.dataset.errors import FileError


def comfy_image(levels: np.ndarray) -> torch.Tensor:
    """ComfyUI LoadImage's formula for an 8-bit RGB image."""
    return torch.from_numpy(levels.astype(np.float32) / 255.0)[None,]


def comfy_mask(alpha: np.ndarray) -> torch.Tensor:
    """ComfyUI LoadImage's mask from an 8-bit alpha channel."""
    return (1.0 - torch.from_numpy(alpha.astype(np.float32) / 255.0))[None,]


def test_rgb_png_is_bit_for_bit_what_loadimage_gives(tmp_path: Path) -> None:
    levels = noise(21, 34, 3)
    d = decode_file(tmp_path, png8(tmp_path / "a.png", levels).name)
    assert d.bits == 8 and d.mask_source == "none" and d.mask() is None
    assert torch.equal(d.image(), comfy_image(levels))
    assert d.image().shape == (1, 21, 34, 3) and d.image().dtype == torch.float32


def test_rgba_png_keeps_rgb_and_its_alpha_is_the_mask_as_loadimage_computes_it(tmp_path: Path) -> None:
    levels = noise(16, 9, 4, seed=1)
    d = decode_file(tmp_path, png8(tmp_path / "a.png", levels).name)
    assert d.mask_source == "alpha"
    assert torch.equal(d.image(), comfy_image(levels[:, :, :3]))
    assert torch.equal(d.mask(), comfy_mask(levels[:, :, 3]))


def test_sixteen_bit_png_keeps_all_sixteen_bits(tmp_path: Path) -> None:
    levels = noise(7, 11, 4, seed=2, dtype=np.uint16)
    d = decode_file(tmp_path, png16(tmp_path / "a.png", levels).name)
    assert d.bits == 16
    expected = torch.from_numpy(levels[:, :, :3].astype(np.float32) / 65535.0)[None]
    assert torch.equal(d.image(), expected)
    assert torch.equal(d.mask(), (1.0 - torch.from_numpy(levels[:, :, 3].astype(np.float32) / 65535.0))[None])
    # the levels round-trip exactly: nothing was cut to 8 bits
    assert np.array_equal(np.round(d.image()[0].numpy().astype(np.float64) * 65535).astype(np.uint16), levels[:, :, :3])


@pytest.mark.parametrize("channels", [1, 2])
def test_grey_is_repeated_to_rgb_and_grey_alpha_gives_a_mask(tmp_path: Path, channels: int) -> None:
    levels = noise(5, 6, channels, seed=3)
    d = decode_file(tmp_path, png8(tmp_path / "g.png", levels).name)
    assert torch.equal(d.image(), comfy_image(np.repeat(levels[:, :, :1], 3, axis=2)))
    assert (d.mask_source == "alpha") == (channels == 2)
    if channels == 2:
        assert torch.equal(d.mask(), comfy_mask(levels[:, :, 1]))


def test_sixteen_bit_grey_png(tmp_path: Path) -> None:
    levels = noise(4, 5, 1, seed=5, dtype=np.uint16)
    d = decode_file(tmp_path, png16(tmp_path / "g.png", levels).name)
    assert d.bits == 16 and np.array_equal(d.rgb, np.repeat(levels, 3, axis=2))


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_png_with_and_without_transparency(tmp_path: Path, transparent: bool) -> None:
    path, rgba = palette_png(tmp_path / "p.png", transparent)
    d = decode_file(tmp_path, path.name)
    assert np.array_equal(d.rgb, rgba[:, :, :3])
    if transparent:
        assert d.mask_source == "alpha" and torch.equal(d.mask(), comfy_mask(rgba[:, :, 3]))
    else:
        assert d.mask_source == "none"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_is_applied_as_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    path = jpeg(tmp_path / "o.jpg", noise(24, 40, 3, seed=orientation), orientation)
    d = decode_file(tmp_path, path.name)
    assert np.array_equal(d.rgb, pillow_levels(path, "RGB"))


def test_a_portrait_phone_jpeg_comes_out_upright(tmp_path: Path) -> None:
    """Orientation 6: stored landscape, shown rotated 90 degrees clockwise."""
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16] = 255  # the left half white
    d = decode_file(tmp_path, jpeg(tmp_path / "p.jpg", stored, 6).name)
    assert (d.height, d.width) == (32, 16)
    assert d.rgb[:12].mean() > 200 and d.rgb[20:].mean() < 50  # the white half is now on top


def test_png_exif_orientation_is_applied(tmp_path: Path) -> None:
    levels = noise(6, 10, 3, seed=6)
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(levels).save(tmp_path / "r.png", exif=exif.tobytes())
    d = decode_file(tmp_path, "r.png")
    assert np.array_equal(d.rgb, np.rot90(levels, 1))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow_for_every_orientation(orientation: int) -> None:
    levels = noise(3, 5, 3, seed=7)
    exif = Image.Exif()
    exif[0x0112] = orientation
    b = io.BytesIO()
    Image.fromarray(levels).save(b, "PNG", exif=exif.tobytes())
    with Image.open(b) as img:
        expected = np.asarray(ImageOps.exif_transpose(img))
    assert np.array_equal(orient(levels, orientation), expected)


def test_lossless_webp_is_exact(tmp_path: Path) -> None:
    levels = noise(9, 13, 4, seed=8)
    levels[:, :, 3] = np.where(levels[:, :, 3] > 128, 255, levels[:, :, 3])
    d = decode_file(tmp_path, webp(tmp_path / "w.webp", levels).name)
    assert np.array_equal(d.rgb, pillow_levels(tmp_path / "w.webp", "RGBA")[:, :, :3])
    assert d.mask_source == "alpha"


def test_masklabel_white_trains_so_it_is_an_unmasked_zero(tmp_path: Path) -> None:
    png8(tmp_path / "c.png", noise(4, 6, 4, seed=9))
    label = np.zeros((4, 6, 1), np.uint8)
    label[:2] = 255  # train on the top half
    label[3, 5] = 51
    png8(tmp_path / "c-masklabel.png", label)
    d = decode_file(tmp_path, "c.png", "c-masklabel.png")
    assert d.mask_source == "masklabel"  # wins over the alpha channel
    mask = d.mask()[0]
    assert torch.equal(mask[:2], torch.zeros(2, 6)) and torch.equal(mask[2], torch.ones(6))
    assert mask[3, 5] == 1.0 - np.float32(51) / np.float32(255)


def test_colour_masklabel_is_read_by_its_luma_like_pillows_grey(tmp_path: Path) -> None:
    png8(tmp_path / "c.png", noise(3, 3, 3))
    colour = noise(3, 3, 3, seed=10)
    png8(tmp_path / "c-masklabel.png", colour)
    d = decode_file(tmp_path, "c.png", "c-masklabel.png")
    assert np.array_equal(d.coverage, np.asarray(Image.fromarray(colour).convert("L")))


def test_masklabel_of_another_size_is_an_error_not_a_resample(tmp_path: Path) -> None:
    png8(tmp_path / "c.png", noise(4, 6, 3))
    png8(tmp_path / "c-masklabel.png", noise(6, 4, 1))
    with pytest.raises(FileError, match=re.escape("c-masklabel.png is 4x6 pixels, its image 6x4")):
        decode_file(tmp_path, "c.png", "c-masklabel.png")


def test_pixel_digest_tells_pixels_and_depth_apart() -> None:
    a = noise(4, 4, 3)
    assert pixel_digest(a) == pixel_digest(a.copy())
    b = a.copy()
    b[0, 0, 0] ^= 1
    assert pixel_digest(a) != pixel_digest(b)
    assert pixel_digest(a) != pixel_digest(a.astype(np.uint16))
    assert pixel_digest(a.reshape(2, 8, 3)) != pixel_digest(a)


def _png_with_idat(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BAD_FILES = {
    "empty.png": (b"", "is empty"),
    "junk.jpg": (b"not an image at all, just text", "is not a PNG, JPEG, WEBP image"),
    "truncated.png": (None, "is truncated"),
    "truncated.jpg": (None, "is truncated"),
    "truncated.webp": (None, "is truncated"),
    # headers claiming 81 and 10,000 megapixels over a few bytes of deflate: refused undecoded
    "bomb.png": (_png_with_idat(9000, 9000, zlib.compress(b"\x00" * 1000)), "is 9000x9000 pixels, over the limit"),
    "hugebomb.png": (_png_with_idat(10**5, 10**5, zlib.compress(b"\x00" * 1000)), "claims more pixels than that"),
    "damaged.png": (_png_with_idat(8, 8, b"\x78\x9c" + b"\xff" * 40), "is damaged"),
}


def _write_bad(tmp_path: Path, name: str, data: bytes | None) -> None:
    if data is None:
        good = tmp_path / ("good" + Path(name).suffix)
        levels = noise(64, 64, 3)
        if name.endswith(".png"):
            png8(good, levels)
        elif name.endswith(".jpg"):
            jpeg(good, levels)
        else:
            webp(good, levels)
        whole = good.read_bytes()
        data = whole[: len(whole) * 2 // 3]
        good.unlink()
    (tmp_path / name).write_bytes(data)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_a_clear_error_naming_it(tmp_path: Path, name: str) -> None:
    data, reason = BAD_FILES[name]
    _write_bad(tmp_path, name, data)
    with pytest.raises(FileError) as caught:
        decode_file(tmp_path, name)
    message = str(caught.value)
    assert message.startswith(name) and reason in message
    assert str(tmp_path) not in message and not re.search(r"0x[0-9a-f]{6}|<|object at", message)


def test_truncated_files_are_refused_even_where_pillow_is_told_to_load_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some custom nodes set LOAD_TRUNCATED_IMAGES for the whole process; a half file would
    then decode grey at the bottom and be saved as if it were whole."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    for name in ("truncated.png", "truncated.jpg"):
        _write_bad(tmp_path, name, None)
        with pytest.raises(FileError, match="is truncated"):
            decode_file(tmp_path, name)


def test_a_truncated_jpeg_whose_thumbnail_ends_with_an_end_marker_is_still_refused(tmp_path: Path) -> None:
    """An EXIF thumbnail is a whole JPEG, end marker included, before the image's first scan:
    its end marker must not pass for the image's."""
    whole = jpeg(tmp_path / "w.jpg", noise(64, 64, 3)).read_bytes()
    thumbnail = b"\xff\xd8" + b"thumbnail" + b"\xff\xd9"
    app = b"\xff\xef" + struct.pack(">H", len(thumbnail) + 2) + thumbnail
    with_thumbnail = whole[:2] + app + whole[2:]
    (tmp_path / "ok.jpg").write_bytes(with_thumbnail)
    assert decode_file(tmp_path, "ok.jpg").width == 64
    (tmp_path / "cut.jpg").write_bytes(with_thumbnail[: len(with_thumbnail) * 2 // 3])
    with pytest.raises(FileError, match=re.escape("cut.jpg is truncated")):
        decode_file(tmp_path, "cut.jpg")


def test_a_file_over_the_byte_limit_is_refused_unread(tmp_path: Path) -> None:
    png8(tmp_path / "big.png", noise(32, 32, 3))
    with pytest.raises(FileError, match=r"big.png is [\d,]+ bytes, over the limit of 100"):
        decode_file(tmp_path, "big.png", max_bytes=100)


@pytest.fixture
def outside(tmp_path: Path) -> tuple[Path, Path]:
    """A dataset folder `data`, and beside it a folder `outside` holding a.png."""
    (tmp_path / "outside").mkdir()
    png8(tmp_path / "outside" / "a.png", noise(2, 2, 3))
    (tmp_path / "data").mkdir()
    return tmp_path / "data", tmp_path / "outside"


def test_a_symlinked_image_is_refused_not_followed(outside: tuple[Path, Path]) -> None:
    data, elsewhere = outside
    (data / "link.png").symlink_to(elsewhere / "a.png")
    with pytest.raises(FileError, match=re.escape("link.png is a symbolic link")):
        decode_file(data, "link.png")


def test_a_folder_swapped_for_a_symlink_after_listing_is_refused(outside: tuple[Path, Path]) -> None:
    data, elsewhere = outside
    (data / "sub").symlink_to(elsewhere)
    with pytest.raises(FileError, match=re.escape("a folder on the way to sub/a.png is a symbolic link")):
        decode_file(data, "sub/a.png")


@pytest.mark.parametrize("rel", ["../outside/a.png", "/etc/passwd", "sub/../../a.png", "a\x00.png"])
def test_a_path_leaving_the_dataset_is_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(ValueError, match=r"leaves its folder|not a relative path"):
        decode_file(tmp_path, rel)


def test_a_fifo_named_like_an_image_is_refused_without_hanging(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(FileError, match=re.escape("pipe.png is a symbolic link, a folder or a device")):
        decode_file(tmp_path, "pipe.png")


def test_decode_files_returns_each_result_in_order_errors_as_values(tmp_path: Path) -> None:
    names = []
    for i in range(6):
        png8(tmp_path / f"{i}.png", noise(3 + i, 4, 3, seed=i))
        names.append(f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"")
    jobs = [(n, None) for n in names[:3]] + [("bad.png", None)] + [(n, None) for n in names[3:]]
    results = decode_files(tmp_path, jobs, workers=3)
    assert isinstance(results[3], FileError)
    good = [r for r in results if not isinstance(r, FileError)]
    assert [r.rel for r in good] == names and [r.height for r in good] == [3, 4, 5, 6, 7, 8]
