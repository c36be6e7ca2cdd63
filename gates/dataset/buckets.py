"""Aspect-ratio buckets as kohya's sd-scripts makes and picks them, for Bucket Resize and statistics.

sd-scripts (`library/model_util.py` make_bucket_resolutions, `library/train_util.py`
BucketManager.select_bucket) trains images of mixed shapes in buckets: sizes of about the
training resolution's area, each side a multiple of the step, between a minimum and a maximum
side. An image goes to the bucket whose aspect ratio is nearest its own, is scaled to cover it
and centre-cropped to it. With no_upscale, an image is only ever scaled down (to the
resolution's area at most) and its bucket is its own size rounded down to the step. The
arithmetic below is sd-scripts', so a set resized here lands in the buckets the trainer would
pick, and `bucket_counts` predicts the trainer's bucket statistics. Sizes are (width, height)
throughout, as sd-scripts writes them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from .errors import DatasetError


@dataclass(frozen=True, order=True)
class Bucket:
    """A bucket's size, in pixels; `str()` gives its label, "832x1216" (width x height)."""

    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class BucketRules:
    """sd-scripts' bucket settings.

    Attributes:
        width, height: the training resolution (`--resolution`); buckets have about its area.
        step: every bucket side is a multiple of it (`--bucket_reso_steps`, 64).
        min_side, max_side: the smallest and largest bucket side (`--min_bucket_reso` 256,
            `--max_bucket_reso` 1024).
        no_upscale: never scale an image up (`--bucket_no_upscale`).
    """

    width: int = 1024
    height: int = 1024
    step: int = 64
    min_side: int = 256
    max_side: int = 1024
    no_upscale: bool = False

    def __post_init__(self) -> None:
        numbers = (self.width, self.height, self.step, self.min_side, self.max_side)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in numbers):
            raise DatasetError("bucket sizes are whole numbers above 0")
        if self.step % 8:
            raise DatasetError("the bucket step must be a multiple of 8")
        if self.min_side % self.step or self.max_side % self.step:
            raise DatasetError(f"the smallest and largest bucket sides must be multiples of the step ({self.step})")
        if not self.min_side <= min(self.width, self.height) <= max(self.width, self.height) <= self.max_side:
            raise DatasetError("the resolution must lie between the smallest and the largest bucket side")

    @property
    def max_area(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Fit:
    """Where one image goes: scale it to `resized`, then crop `bucket` out of it at (crop_left, crop_top).

    Attributes:
        bucket: the bucket.
        resized_width, resized_height: the size to scale the image to (it covers the bucket).
        crop_left, crop_top: where the bucket starts in the scaled image (centred, as sd-scripts crops).
        ar_error: the bucket's aspect ratio minus the image's.
    """

    bucket: Bucket
    resized_width: int
    resized_height: int
    crop_left: int
    crop_top: int
    ar_error: float


@dataclass(frozen=True)
class BucketCounts:
    """How many images go to each bucket (in bucket order), and how many fit none (too small)."""

    counts: dict[Bucket, int]
    too_small: int


@lru_cache(maxsize=64)
def buckets(rules: BucketRules) -> tuple[Bucket, ...]:
    """The buckets sd-scripts makes for `rules` (make_bucket_resolutions), sorted."""
    side = int(math.sqrt(rules.max_area) // rules.step) * rules.step
    found = {(side, side)}
    width = rules.min_side
    while width <= rules.max_side:
        height = min(rules.max_side, int((rules.max_area // width) // rules.step) * rules.step)
        if height >= rules.min_side:
            found.add((width, height))
            found.add((height, width))
        width += rules.step
    return tuple(Bucket(w, h) for w, h in sorted(found))


def nearest_bucket(width: int, height: int, rules: BucketRules) -> Fit:
    """The bucket sd-scripts puts a `width` x `height` image in, and how to get it there.

    Raises:
        DatasetError: a size of 0 or less, or an image too small for any bucket (no_upscale
            with a side under one step).
    """
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise DatasetError("an image size is two whole numbers above 0")
    aspect = width / height
    if not rules.no_upscale:
        table = buckets(rules)
        if Bucket(width, height) in table:
            bucket = Bucket(width, height)
        else:  # the first of the nearest aspect ratios, as numpy's argmin picks it
            bucket = min(table, key=lambda b: abs(b.width / b.height - aspect))
        scale = bucket.height / height if aspect > bucket.width / bucket.height else bucket.width / width
        resized = (int(width * scale + 0.5), int(height * scale + 0.5))
    else:
        resized = _downscaled(width, height, rules) if width * height > rules.max_area else (width, height)
        bucket = Bucket(resized[0] - resized[0] % rules.step, resized[1] - resized[1] % rules.step)
        if bucket.width == 0 or bucket.height == 0:
            raise DatasetError(f"an image of {width}x{height} has a side under one bucket step ({rules.step})")
    return Fit(
        bucket,
        resized[0],
        resized[1],
        (resized[0] - bucket.width) // 2,
        (resized[1] - bucket.height) // 2,
        bucket.width / bucket.height - aspect,
    )


def _downscaled(width: int, height: int, rules: BucketRules) -> tuple[int, int]:
    """no_upscale's size for an image over the resolution's area: that area at the image's aspect
    ratio, the width or the height rounded to the step, whichever keeps the aspect ratio better."""
    aspect = width / height
    resized_width = math.sqrt(rules.max_area * aspect)
    resized_height = rules.max_area / resized_width
    by_width = _round_to_step(resized_width, rules.step)
    height_by_width = _round_to_step(by_width / aspect, rules.step)
    by_height = _round_to_step(resized_height, rules.step)
    width_by_height = _round_to_step(by_height * aspect, rules.step)
    if height_by_width == 0 or by_height == 0:
        raise DatasetError(f"an image of {width}x{height} is too narrow for any bucket")
    if abs(by_width / height_by_width - aspect) < abs(width_by_height / by_height - aspect):
        return by_width, int(by_width / aspect + 0.5)
    return int(by_height * aspect + 0.5), by_height


def _round_to_step(x: float, step: int) -> int:
    n = int(x + 0.5)
    return n - n % step


def bucket_counts(sizes: Iterable[tuple[int, int]], rules: BucketRules) -> BucketCounts:
    """How many of the images of (width, height) `sizes` go to each bucket (the trainer's statistics)."""
    counts: Counter[Bucket] = Counter()
    too_small = 0
    for width, height in sizes:
        try:
            counts[nearest_bucket(width, height, rules).bucket] += 1
        except DatasetError:
            too_small += 1
    return BucketCounts(dict(sorted(counts.items())), too_small)
