"""Previews and thumbnails: the PNG writer and the box downscale behind every pause preview."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from gates import images


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (64, 33, 1), (9, 31, 2), (40, 17, 3), (3, 300, 4)])
def test_encode_png_is_exact_in_any_decoder_for_every_channel_count(shape):
    """Extreme and neighbouring values too: the Up filter wraps modulo 256."""
    rng = np.random.default_rng(sum(shape))
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    pixels.reshape(-1)[:4] = [0, 255, 0, 255][: pixels.size]
    data = images.encode_png(pixels)
    assert data[:8] == images.PNG_SIGNATURE
    decoded = Image.open(io.BytesIO(data))
    decoded.load()  # checks every chunk's CRC and the deflate stream
    channels = shape[2] if len(shape) == 3 else 1
    assert decoded.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    assert decoded.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(decoded).reshape(shape), pixels)


def test_a_flat_image_compresses_to_under_one_percent():
    flat = np.full((512, 512, 3), 128, np.uint8)
    assert len(images.encode_png(flat)) < flat.nbytes / 100


def test_png_bytes_of_a_thumbnail_round_trips():
    thumb = images.thumbnail(torch.rand(3, 300, 200, 3))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(images.png_bytes(thumb)))), np.asarray(thumb))


@pytest.mark.parametrize(("h", "w", "c", "factor"), [(2048, 2048, 3, 2), (301, 257, 4, 3), (97, 1600, 1, 16)])
def test_the_box_downscale_is_avg_pool_over_whole_cells(h, w, c, factor):
    """Rows and columns that do not fill a cell are dropped, as avg_pool2d drops them."""
    image = torch.rand(h, w, c, generator=torch.Generator().manual_seed(h))
    want = torch.nn.functional.avg_pool2d(image.permute(2, 0, 1)[None], factor)[0].permute(1, 2, 0)
    got = images._fit(image, side=1, factor=factor)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-6, rtol=0)


def test_the_box_downscale_takes_half_precision_and_leaves_its_input_alone():
    image = torch.rand(64, 48, 3).to(torch.bfloat16)
    before = image.clone()
    got = images._fit(image, side=16)
    assert got.shape == (16, 12, 3) and got.dtype == torch.float32
    assert torch.equal(image, before)


@pytest.mark.parametrize("shape", [(1, 5000, 1, 3), (1, 1, 3000, 1), (2, 3, 2500, 4)])
def test_a_thin_strip_publishes_with_a_thumbnail_and_previews(store, shape):
    """The box average never shrinks the short side below one pixel (it used to fail the publish)."""
    store.publish("strip", torch.rand(*shape))
    thumb = Image.open(io.BytesIO(store.thumbnail("strip")))
    preview = Image.open(io.BytesIO(store.render("strip", 0)))
    for img in (thumb, preview):
        img.load()
        assert min(img.size) >= 1
    assert max(thumb.size) <= images.THUMB_SIDE and max(preview.size) <= 1024


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height over a few bytes of deflated zeros."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return images.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("side", "size"), [(9000, "9000x9000 pixels is over the limit"), (100000, "too many pixels")])
def test_a_header_over_the_limit_is_refused_as_too_many_pixels_whoever_notices(side, size):
    """Ours notices 9000x9000; Pillow's own limit notices 100000x100000 first: both are one
    refusal a caller can tell from a file that is not an image."""
    with pytest.raises(images.TooManyPixels, match=size):
        images.decode_levels(_png_claiming(side, side))
    with pytest.raises(images.UnreadableImage):
        images.decode_levels(b"not an image")


def test_decode_levels_keeps_the_stored_integers():
    png16 = io.BytesIO()
    import png

    levels = np.array([[[0, 1, 65535]]], np.uint16)
    png.Writer(1, 1, greyscale=False, bitdepth=16).write(png16, levels.reshape(1, 3))
    got = images.decode_levels(png16.getvalue())
    assert got.dtype == np.uint16 and np.array_equal(got, levels)
    rgba = np.array([[[1, 2, 3, 4]]], np.uint8)
    b = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(b, "PNG")
    got = images.decode_levels(b.getvalue())
    assert got.dtype == np.uint8 and np.array_equal(got, rgba)
