"""sd-scripts' aspect-ratio buckets: the table it makes, the bucket it picks, its statistics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gates.dataset.buckets import Bucket, BucketRules, bucket_counts, buckets, nearest_bucket
from gates.dataset.errors import DatasetError

SDXL = BucketRules(1024, 1024, step=64, min_side=256, max_side=2048)


def test_the_table_for_512_is_sd_scripts_table() -> None:
    """make_bucket_resolutions((512, 512), 256, 1024, 64), worked out by hand from its loop."""
    table = [str(b) for b in buckets(BucketRules(512, 512, 64, 256, 1024))]
    # width 256: height min(1024, 262144 // 256 // 64 * 64) = 1024; 320: 768; ... 1024: 256;
    # each with its transpose, the square 512x512, sorted by (width, height)
    assert table == [
        "256x832",
        "256x896",
        "256x960",
        "256x1024",
        "320x704",
        "320x768",
        "384x640",
        "448x576",
        "512x512",
        "576x448",
        "640x384",
        "704x320",
        "768x320",
        "832x256",
        "896x256",
        "960x256",
        "1024x256",
    ]


@given(st.sampled_from([(512, 512), (768, 768), (1024, 1024), (1024, 768)]))
def test_every_bucket_is_within_the_rules(resolution: tuple[int, int]) -> None:
    rules = BucketRules(*resolution, step=64, min_side=256, max_side=2048)
    table = buckets(rules)
    assert list(table) == sorted(table) and len(set(table)) == len(table)
    for b in table:
        assert b.width % 64 == 0 and b.height % 64 == 0
        assert 256 <= b.width <= 2048 and 256 <= b.height <= 2048
        assert b.width * b.height <= rules.max_area
        assert Bucket(b.height, b.width) in table  # portrait and landscape alike


@pytest.mark.parametrize(
    ("size", "bucket", "resized", "crop"),
    [
        ((1024, 1024), "1024x1024", (1024, 1024), (0, 0)),
        ((1920, 1080), "1344x768", (1365, 768), (10, 0)),  # SDXL's 16:9 bucket
        ((1080, 1920), "768x1344", (768, 1365), (0, 10)),
        ((512, 512), "1024x1024", (1024, 1024), (0, 0)),  # scaled up to cover
        ((832, 1216), "832x1216", (832, 1216), (0, 0)),  # a bucket's own size stays
    ],
)
def test_the_nearest_bucket_covers_and_centre_crops(
    size: tuple[int, int], bucket: str, resized: tuple[int, int], crop: tuple[int, int]
) -> None:
    fit = nearest_bucket(*size, SDXL)
    assert (str(fit.bucket), (fit.resized_width, fit.resized_height), (fit.crop_left, fit.crop_top)) == (
        bucket,
        resized,
        crop,
    )


def test_no_upscale_keeps_small_images_small_and_shrinks_big_ones_to_the_area() -> None:
    rules = BucketRules(1024, 1024, 64, 256, 2048, no_upscale=True)
    small = nearest_bucket(700, 500, rules)
    assert (str(small.bucket), small.resized_width, small.resized_height) == ("640x448", 700, 500)
    assert (small.crop_left, small.crop_top) == (30, 26)
    big = nearest_bucket(4000, 3000, rules)
    assert big.resized_width * big.resized_height <= 1024 * 1024 * 1.01
    assert big.bucket.width <= big.resized_width and big.bucket.height <= big.resized_height
    with pytest.raises(DatasetError, match="side under one bucket step"):
        nearest_bucket(40, 500, rules)


@given(st.integers(64, 6000), st.integers(64, 6000), st.booleans())
def test_every_image_is_covered_by_its_resize_and_cropped_inside_it(width: int, height: int, no_upscale: bool) -> None:
    rules = BucketRules(1024, 1024, 64, 256, 2048, no_upscale=no_upscale)
    fit = nearest_bucket(width, height, rules)
    assert fit.resized_width >= fit.bucket.width and fit.resized_height >= fit.bucket.height
    assert 0 <= fit.crop_left <= fit.resized_width - fit.bucket.width
    assert 0 <= fit.crop_top <= fit.resized_height - fit.bucket.height
    if no_upscale:
        assert fit.resized_width <= width and fit.resized_height <= height
    else:
        assert fit.bucket in buckets(rules)


def test_bucket_counts_are_the_trainers_statistics() -> None:
    rules = BucketRules(1024, 1024, 64, 256, 2048, no_upscale=True)
    counts = bucket_counts([(1024, 1024), (1030, 1030), (1920, 1080), (10, 10)], rules)
    assert {str(b): n for b, n in counts.counts.items()} == {"1024x1024": 2, "1344x768": 1}
    assert counts.too_small == 1


@pytest.mark.parametrize(
    ("rules", "match"),
    [
        (dict(step=60), "multiple of 8"),
        (dict(min_side=300), "multiples of the step"),
        (dict(width=2048, max_side=1024), "between the smallest and the largest"),
        (dict(width=0), "above 0"),
    ],
)
def test_impossible_rules_are_refused(rules: dict[str, int], match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        BucketRules(**rules)  # type: ignore[arg-type]
