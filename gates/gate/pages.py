"""A dataset page at the gate: its captions shown, its decisions journaled, its routes cut.

A Dataset Load node sends the gate a `Page` with its batch (socket type PAGE_TYPE). The gate
shows each item's caption when no captions are wired, and once a person has answered it writes
one decision per file into the dataset's journal (`journal_page`) before anything leaves the
gate, so a file whose image went down a route is never offered as "not yet decided" again, even
if ComfyUI is killed a moment later. A page that ends without an answer (Stop, a park, an
error) hands its files back (`release_page`). `route_page` is what Dataset Save and Bucket
Resize use to know which page items reached them down one route.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..dataset.errors import DatasetError
from ..dataset.journal import Decided, Decision, Journal
from ..dataset.owner import process_owner
from ..dataset.page import Page
from .split import Decisions

PAGE_TYPE = "DG_PAGE"

log = logging.getLogger("dataset_gates")


def check_page(page: object, batch: int) -> Page:
    """`page` if it is a Page of `batch` items; ValueError naming the fix otherwise."""
    if not isinstance(page, Page):
        raise ValueError("page must come from a Dataset Load node")
    if len(page.items) != batch:
        raise ValueError(
            f"the page holds {len(page.items)} images but the batch {batch}: wire the image and the page"
            " of the same Dataset Load"
        )
    return page


def page_captions(page: Page) -> list[str]:
    """Each item's caption, "" for an item without one (shown as empty, to type one)."""
    return [item.caption or "" for item in page.items]


def journal_page(
    page: Page,
    routes: Sequence[int],
    labels: Sequence[str],
    captions: Sequence[str] | None,
    edited: Sequence[bool] | None,
) -> Decided:
    """Write each page item's decision: its route (1-based here, 0-based in the journal), the
    route's label, its caption when it was edited at the gate, and its size.

    Returns:
        What the journal wrote.

    Raises:
        DatasetError: a file of the page was decided or claimed by another run meanwhile (then
            nothing of the page is written, and the run stops rather than pass on images whose
            decision was not kept: queue again for a fresh page), or the journal cannot be
            written.
    """
    decisions = [
        Decision(
            item.rel,
            routes[i] - 1,
            labels[routes[i] - 1],
            captions[i] if captions is not None and edited is not None and edited[i] else None,
            width=item.width,
            height=item.height,
        )
        for i, item in enumerate(page.items)
    ]
    done = Journal(page.root).decide(
        decisions, page.owner or process_owner(), redo=page.show != "undecided", all_or_nothing=True
    )
    if done.refused:
        reasons = "; ".join(f"{path}: {why}" for path, why in done.refused[:5])
        raise DatasetError(
            f"{len(done.refused)} files of this page were decided or claimed by another run meanwhile"
            f" ({reasons}): nothing of the page was kept; queue again for a fresh page"
        )
    return done


def release_page(page: Page) -> None:
    """Hand the page's files back to "not yet decided" (the page ended without an answer)."""
    if not page.owner:
        return
    try:
        Journal(page.root).release(page.owner, [item.rel for item in page.items])
    except Exception as exc:  # a release that fails only leaves claims to lapse on their own
        log.warning("Image Gate: could not hand the page's files back (%s); they return when their claim lapses", exc)


@contextmanager
def release_on_error(page: Page | None) -> Iterator[None]:
    """Hand `page`'s files back when the block ends with an exception (Stop, Cancel, an error)."""
    try:
        yield
    except BaseException:
        if page is not None:
            release_page(page)
        raise


def route_page(page: Page, decisions: Decisions | None, route: int) -> Page:
    """The page of the images that went down `route` (1-based), with the captions they left the
    gate with; without decisions, the whole page."""
    if decisions is None:
        return page
    if decisions.batch != len(page.items):
        raise ValueError(f"the decisions are for {decisions.batch} images but the page holds {len(page.items)}")
    indices = decisions.indices(route)
    taken = page.take(indices)
    captions = decisions.captions_of(indices)
    if captions is None:
        return taken
    edited = decisions.edited or (False,) * decisions.batch
    # an image without a caption that nobody typed one for stays without (no empty .txt)
    kept = [
        None if item.caption is None and not edited[i] and not text else text
        for item, i, text in zip(taken.items, indices, captions)
    ]
    return taken.with_captions(kept)
