"""The masks a gate keeps across runs (MaskKeeper in web/mask_data.js) on their own in headless
Chromium.

mask_data.js imports nothing from ComfyUI, so it runs in the standalone slot browser's server
(which serves web/ at /web/), as tests/test_web_grid.py does for gate_grid.js. The controller
that uses it (painting, uploads at a pause) runs in tests/e2e/test_ui_e2e.py. Needs Chromium and
playwright (skips without them, fails in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_browser_page import blank_page, chromium  # noqa: F401 - chromium: the shared fixture

pytestmark = pytest.mark.browser


@pytest.fixture
def blank(chromium, tmp_path: Path) -> Iterator:
    with blank_page(chromium, tmp_path / "bus") as page:
        yield page


# Masks painted the way the brush paints them (opaque = masked) and kept the way
# GateController keeps them: for every image, for images 1 and 3 of a batch, then erased.
KEEPER = """
async () => {
  const { ALL, MaskKeeper, blankMask } = await import('/web/mask_data.js');
  const painted = (x) => {
    const m = blankMask(8, 8);
    m.getContext('2d').fillRect(x, 0, 2, 2);
    m.dataset.x = String(x);  // tells the masks apart below
    return m;
  };
  const name = (mask) => (mask ? Number(mask.dataset.x) : null);
  const keeper = new MaskKeeper();
  const out = { empty: [keeper.size, keeper.describe(), keeper.maskFor(0), keeper.overlayFor(ALL)] };
  keeper.keep([], painted(1));  // nothing selected: every image
  keeper.keep([1, 3], painted(5));
  out.kept = {
    size: keeper.size,
    maskFor: [0, 1, 3, ALL].map((k) => name(keeper.maskFor(k))),
    overlays: [0, 1, 3, ALL].map((k) => keeper.overlayFor(k)?.slice(0, 22) ?? null),
    sameTint: keeper.overlayFor(1) === keeper.overlayFor(3) && keeper.overlayFor(0) !== keeper.overlayFor(1),
    uploads4: keeper.uploadsFor(4).map(([i, m]) => [i, name(m)]),
    uploads2: keeper.uploadsFor(2).map(([i, m]) => [i, name(m)]),
    note: keeper.describe(),
  };
  keeper.keep([], blankMask(8, 8));  // an empty mask for every image drops that one only
  out.erasedAll = { size: keeper.size, maskFor0: name(keeper.maskFor(0)), overlay0: keeper.overlayFor(0),
                    note: keeper.describe() };
  keeper.keep([3], painted(2));
  keeper.keep([1], blankMask(8, 8));
  out.one = { maskFor: [1, 3].map((k) => name(keeper.maskFor(k))), note: keeper.describe() };
  keeper.clear();
  out.cleared = [keeper.size, keeper.describe(), keeper.uploadsFor(4)];
  return out;
}
"""


def test_kept_masks_per_image_and_for_every_image(blank) -> None:
    got = blank.evaluate(KEEPER)
    assert got["empty"] == [0, "", None, None]
    kept = got["kept"]
    assert kept["size"] == 3
    assert kept["maskFor"] == [1, 5, 5, 1]  # an image's own mask wins over every image's
    assert all(o == "data:image/png;base64," for o in kept["overlays"])
    assert kept["sameTint"]
    assert kept["uploads4"] == [[None, 1], [1, 5], [3, 5]]  # in the order painted
    assert kept["uploads2"] == [[None, 1], [1, 5]]  # image 3's mask stays kept, unsent
    assert kept["note"] == "Mask painted on every image (2 with their own); kept for the next run until cleared."
    assert got["erasedAll"] == {
        "size": 2,
        "maskFor0": None,
        "overlay0": None,
        "note": "Mask painted on 2 images; kept for the next run until cleared.",
    }
    assert got["one"] == {"maskFor": [None, 2], "note": "Mask painted on 1 image; kept for the next run until cleared."}
    assert got["cleared"] == [0, "", []]
