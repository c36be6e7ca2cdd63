"""One Dataset Load: the next page of a dataset folder, claimed for this run, as one batch.

The order matters and is the one place it is kept: check the folder against the server's
roots, list it (`scan`), read the journal, leave out what other runs hold, filter (`select`),
hand back this process's earlier claims, claim the page, decode it (`page.load`), and pad it
into one batch (`page.assemble`). A file that cannot be read is an error row of the page and
the page takes the next file in its place, so a run of broken files never makes a page (or a
queue of pages) stall; with the "undecided" filter such files stay undecided and come back as
rows on the next page, which keeps them in view until someone removes or mends them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .errors import DatasetError
from .journal import Journal
from .page import Failed, Loaded, Page, Show, assemble, load, select
from .progress import Progress
from .roots import Roots
from .scan import Entry, Skipped, scan

MAX_PAGE = 256


@dataclass(frozen=True)
class PageRequest:
    """What a Dataset Load node asks for.

    Attributes:
        folder: the dataset folder as the user typed it.
        depth: subfolder levels to list (0: the folder only).
        show: the filter ("all", "undecided", "route", "uncaptioned").
        route: the route (0-based) for show="route".
        size: the most images a page holds.
        index: which page of the filtered files (0: the first); with "undecided" the files
            decided since the last page have left the list, so 0 is always the next page.
        owner: the run claiming the page (`owner.process_owner()`).
    """

    folder: str
    depth: int = 0
    show: Show = "undecided"
    route: int | None = None
    size: int = 16
    index: int = 0
    owner: str = ""


@dataclass(frozen=True)
class LoadedPage:
    """A page, or why there is none.

    Attributes:
        image, mask: the padded batch (`page.assemble`), None when nothing could be loaded.
        page: the Page (items in batch order, `failed` rows), None with no image.
        progress: the whole folder's counts (decided, by route).
        first, matching: the page's first position (0-based) among the `matching` files of the filter.
        failed: the files that could not be read, with why.
        skipped: what the listing left out (links, odd files).
        root: the dataset folder, resolved.
    """

    image: torch.Tensor | None
    mask: torch.Tensor | None
    page: Page | None
    progress: Progress
    first: int
    matching: int
    failed: tuple[Failed, ...]
    skipped: tuple[Skipped, ...]
    root: str

    @property
    def done(self) -> bool:
        """No image for this filter at this page: past the end (or every file left failed)."""
        return self.page is None


def load_page(request: PageRequest, roots: Roots, *, workers: int | None = None) -> LoadedPage:
    """Load `request`'s page.

    Args:
        request: the folder, filter and page.
        roots: the folders this server may read (`Roots.from_env`).
        workers: decoding threads; default one per CPU.

    Returns:
        LoadedPage: with no page when the filter has no file left at that position.

    Raises:
        RootRefused: the folder is outside the allowed roots.
        DatasetError: not a folder, a bad filter or size, or the journal cannot be used.
    """
    if not 1 <= request.size <= MAX_PAGE:
        raise DatasetError(f"a page holds 1 to {MAX_PAGE} images")
    if request.index < 0:
        raise DatasetError("the page number starts at 0")
    root = roots.check(request.folder, "read")
    if not os.path.isdir(root):
        raise DatasetError(f"{request.folder} is not a folder")
    listing = scan(root, request.depth)
    journal = Journal(listing.root)
    owner = request.owner
    decisions = journal.decisions()
    held = journal.held_by_others(owner) if owner else frozenset()
    chosen = select(listing.entries, decisions, request.show, route=request.route, held=held)
    first = request.index * request.size
    if owner:
        journal.release(owner)  # this process's earlier page is over, decided or not
    progress = journal.progress(e.rel for e in listing.entries)
    image, mask, page, failed = _fill(journal, listing.root, chosen[first:], request, workers)
    return LoadedPage(image, mask, page, progress, first, len(chosen), failed, listing.skipped, str(listing.root))


def _fill(
    journal: Journal, root: Path, candidates: list[Entry], request: PageRequest, workers: int | None
) -> tuple[torch.Tensor | None, torch.Tensor | None, Page | None, tuple[Failed, ...]]:
    """Load candidates until the page holds `size` images or none is left; a file that fails
    is a row and the next one takes its place. Undecided files are claimed before they are read,
    so two servers filling pages at once never both load one."""
    good: list[Loaded] = []
    failed: list[Failed] = []
    at = 0
    while len(good) < request.size and at < len(candidates):
        batch = candidates[at : at + request.size - len(good)]
        at += len(batch)
        if request.owner:
            claimed = set(journal.claim([e.rel for e in batch], request.owner))
            decided = journal.decisions()
            # another server may have claimed or decided one since the listing was filtered
            batch = [e for e in batch if e.rel in claimed or (request.show != "undecided" and e.rel in decided)]
        for item in load(root, batch, workers=workers):
            if item.decoded is None:
                failed.append(Failed(item.entry.rel, item.error or "could not be read"))
            else:
                good.append(item)
    if request.owner and failed:
        journal.release(request.owner, [f.rel for f in failed])
    if not good:
        return None, None, None, tuple(failed)
    image, mask, page = assemble(good, root, workers=workers)
    decided = journal.decisions()
    # a caption edited at a gate is the file's caption now: a review shows (and keeps) it
    captions = [
        d.caption if (d := decided.get(i.rel)) is not None and d.caption is not None else i.caption for i in page.items
    ]
    page = replace(page.with_captions(captions), failed=tuple(failed), show=request.show, owner=request.owner)
    return image, mask, page, tuple(failed)
