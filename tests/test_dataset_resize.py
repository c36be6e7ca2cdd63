"""Bucket Resize: each image and its mask into its sd-scripts bucket, and the page that follows them."""

from __future__ import annotations

import pytest
import torch

from gates.dataset.buckets import BucketRules
from gates.dataset.errors import DatasetError
from gates.dataset.page import Page, PageItem
from gates.dataset.resize import bucket_resize

RULES = BucketRules(256, 256, 64, 64, 512)


def item(rel: str, width: int, height: int, bits: int = 8) -> PageItem:
    return PageItem(rel, rel[:-4], height, width, bits, None, None, None, "none", "digest", "file", 1)


def test_a_bucket_sized_image_is_left_exactly_as_it_was_and_keeps_its_digest():
    image = torch.rand(1, 256, 256, 3)
    done = bucket_resize(image, None, Page("/d", (item("a.png", 256, 256),), (), 256, 256), RULES)
    assert torch.equal(done.image, image) and done.labels == ("256x256",)
    assert done.page is not None and done.page.items[0].pixel_digest == "digest"


def test_the_mask_is_cut_and_scaled_with_its_image():
    image = torch.zeros(2, 40, 60, 3)
    mask = torch.zeros(2, 40, 60)
    mask[0, :20, :30] = 1.0  # the whole of item 0 (30x20), which scales to 320x213 then crops to 320x192
    page = Page("/d", (item("a.png", 30, 20), item("b.png", 60, 40)), (), 40, 60)
    done = bucket_resize(image, mask, page, RULES, "nearest-exact")
    assert done.labels == ("320x192", "320x192")
    assert done.mask.shape == (2, 192, 320)
    assert done.mask[0].min() == 1.0 and done.mask[1].max() == 0.0
    assert done.page is not None and done.page.items[0].pixel_digest == ""  # resized: a save encodes it


def test_a_resized_8_bit_image_stays_on_8_bit_levels_and_a_16_bit_one_on_16_bit_levels():
    image = torch.rand(2, 20, 30, 3)
    page = Page("/d", (item("a.png", 30, 20), item("b.png", 30, 20, bits=16)), (), 20, 30)
    done = bucket_resize(image, None, page, RULES, "bicubic")
    eight, sixteen = done.image[0] * 255, done.image[1] * 65535
    assert torch.allclose(eight, eight.round(), atol=1e-3)
    assert torch.allclose(sixteen, sixteen.round(), atol=0.05) and not torch.allclose(
        sixteen / 257, (sixteen / 257).round()
    )


def test_without_a_page_every_image_is_the_batchs_size_and_no_page_comes_out():
    done = bucket_resize(torch.rand(3, 100, 50, 3), torch.rand(1, 100, 50), None, RULES)
    assert done.page is None and done.labels == ("192x320",) * 3 and done.image.shape == (3, 320, 192, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "lanczos9"}, "unknown scaling"),
        ({"page": Page("/d", (item("a.png", 8, 8),), (), 8, 8), "image": torch.rand(2, 8, 8, 3)}, "page holds 1"),
        ({"mask": torch.rand(3, 8, 8)}, "mask has a batch of 3"),
    ],
)
def test_mismatched_inputs_are_refused_with_what_to_fix(kwargs, message):
    args = {"image": torch.rand(2, 8, 8, 3), "mask": None, "page": None, "rules": RULES} | kwargs
    with pytest.raises(DatasetError, match=message):
        bucket_resize(**args)


def test_a_long_thin_image_is_scaled_only_around_its_window_and_a_normal_one_exactly():
    rules = BucketRules(1024, 1024, 64, 256, 1024)
    thin = bucket_resize(torch.rand(1, 1, 65535, 3), None, None, rules)  # whole: 256 x 16,776,960 x 3 floats, 48 GB
    assert thin.image.shape == (1, 256, 1024, 3) and thin.labels == ("1024x256",)
    image = torch.rand(1, 300, 1000, 3)
    done = bucket_resize(image, None, None, RULES, "bicubic")  # 448x134 scaled, 448x128 cut: the full path
    full = torch.nn.functional.interpolate(
        image.permute(0, 3, 1, 2), size=(134, 448), mode="bicubic", align_corners=False, antialias=True
    )
    expected = full.clamp(0, 1).permute(0, 2, 3, 1)[:, 3:131]
    assert torch.equal(done.image, expected)
