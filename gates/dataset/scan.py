"""Listing a dataset folder: its images in natural order, each with its caption and mask files.

What counts: a file ending .png, .jpg, .jpeg or .webp (any case) is an image; the extension
selects, the decoder then checks the content, so a damaged or mislabelled file is one error
row at load time and never stops a listing. Beside an image `cat.png` its caption is
`cat.txt`, else `cat.caption`, and OneTrainer's mask is `cat-masklabel.png` (never listed as
an image itself). Names starting with "." are not dataset files (the journal, editors' and
sync tools' files) and are passed over silently.

Symbolic links are never followed, to a file or to a folder: each is left out and reported,
as is anything else that is not a plain file or folder.

A re-scan costs one stat of each folder while nothing changed: adding, removing or renaming a
file changes its folder's (mtime_ns, inode, size), and only a changed folder is read again,
with one `scandir` that stats only the files whose name or inode it has not seen (scandir
gives both without a stat; a stat costs about as much as a whole scandir's share of a name on
a loaded two-core machine, so a re-scan that stat'ed 10,000 files took 190 ms against 20 ms
for the scandir). When no folder changed, the previous listing is returned as it is. A file
rewritten in place changes neither its folder nor its inode, so its `size` and `mtime_ns` here
may be stale: the decoder reads the file itself and `Page` keeps the digest of the bytes it
read, so nothing depends on them being fresh.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import DatasetError
from .names import natural_key

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
CAPTION_EXTENSIONS = (".txt", ".caption")  # in order of preference
MASK_SUFFIX = "-masklabel.png"
MAX_DEPTH = 32
RACY_NS = 3_000_000_000  # a folder changed this recently is listed again even if its key looks the same


@dataclass(frozen=True)
class Entry:
    """One image of the dataset.

    Attributes:
        rel: its path inside the dataset folder, POSIX ("sub/cat_001.png").
        stem: its name without the extension ("cat_001").
        size: its size in bytes when the listing first saw it.
        mtime_ns: its modification time then, in nanoseconds.
        caption: the path of its caption file (`<stem>.txt`, else `<stem>.caption`), or None.
        mask: the path of its OneTrainer mask (`<stem>-masklabel.png`), or None.
    """

    rel: str
    stem: str
    size: int
    mtime_ns: int
    caption: str | None = None
    mask: str | None = None


@dataclass(frozen=True)
class Skipped:
    """Something in the folder that is not listed, and why (a link, a device, an unreadable folder)."""

    rel: str
    reason: str


@dataclass(frozen=True)
class Listing:
    """What a scan found.

    Attributes:
        root: the dataset folder, resolved.
        depth: how many levels of subfolders were listed (0: the folder only).
        entries: the images, in natural order of their paths.
        skipped: what was left out and why, in natural order.
    """

    root: Path
    depth: int
    entries: tuple[Entry, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True)
class _Seen:
    """A folder as scandir last saw it.

    `key` is the folder's (mtime_ns, inode, size), which an add, remove or rename inside it
    changes; `settled` says its mtime was over RACY_NS old when it was read, so a change in
    the same clock tick (2 s on FAT, more over some network shares) cannot hide behind an
    equal key (git's "racy clean" rule). `version` changes whenever the names do: a listing
    remembers the versions it was built from.
    """

    key: tuple[int, int, int]
    settled: bool
    names: frozenset[tuple[str, int, str]]
    subdirs: tuple[str, ...]
    odd: tuple[tuple[str, str], ...]
    stats: dict[tuple[str, int], tuple[int, int]]
    version: int


class Scanner:
    """Lists dataset folders, remembering what each folder held so a re-scan is cheap.

    One Scanner serves any number of folders and threads; keep one for the process (the module's
    `scan` does). It remembers at most `max_folders` folders and `max_listings` listings, the
    least recently scanned forgotten first.
    """

    def __init__(self, max_folders: int = 4096, max_listings: int = 16) -> None:
        self._max_folders = max_folders
        self._max_listings = max_listings
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._listings: OrderedDict[tuple[str, int], tuple[tuple[tuple[str, int], ...], Listing]] = OrderedDict()
        self._versions = itertools.count(1)
        self._lock = threading.Lock()

    def scan(self, root: str | os.PathLike[str], depth: int = 0) -> Listing:
        """List the images under `root`.

        Args:
            root: the dataset folder, any path the caller accepts (check it with `roots.Roots`
                first where paths are limited); a link in the path to it is resolved once, here.
            depth: 0 lists the folder only, N also N levels of subfolders.

        Returns:
            A Listing; the same object as the last time when no folder changed.

        Raises:
            DatasetError: `root` is not a folder, or `depth` is out of 0..MAX_DEPTH.
        """
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= MAX_DEPTH:
            raise DatasetError(f"depth must be a whole number from 0 to {MAX_DEPTH}")
        folder = Path(os.path.realpath(root))
        try:
            is_dir = stat.S_ISDIR(os.stat(folder).st_mode)
        except OSError:
            is_dir = False
        if not is_dir:
            raise DatasetError(f"the dataset folder {Path(root).name or root} does not exist or is not a folder")
        with self._lock:
            skipped: list[Skipped] = []
            folders = list(self._walk(folder, depth, skipped))
            signature = tuple((rel_dir, seen.version) for rel_dir, seen in folders)
            signature += tuple((s.rel, -1) for s in skipped)
            key = (str(folder), depth)
            cached = self._listings.get(key)
            if cached is not None and cached[0] == signature:
                self._listings.move_to_end(key)
                return cached[1]
            entries = [entry for rel_dir, seen in folders for entry in _pair(rel_dir, seen)]
            entries.sort(key=lambda e: natural_key(e.rel))
            skipped.sort(key=lambda s: natural_key(s.rel))
            listing = Listing(folder, depth, tuple(entries), tuple(skipped))
            self._listings[key] = (signature, listing)
            self._listings.move_to_end(key)
            while len(self._listings) > self._max_listings:
                self._listings.popitem(last=False)
            return listing

    def _walk(self, folder: Path, depth: int, skipped: list[Skipped]) -> Iterator[tuple[str, _Seen]]:
        """Yield (the folder's path inside the dataset, what it holds) for each folder listed."""
        pending = [("", 0)]
        while pending:
            rel_dir, level = pending.pop()
            try:
                seen = self._remember(folder / rel_dir)
            except OSError as exc:
                reason = "a symbolic link: never followed" if exc.errno == errno.ELOOP else exc.strerror
                skipped.append(Skipped(rel_dir, f"the folder cannot be read ({reason})"))
                continue
            prefix = f"{rel_dir}/" if rel_dir else ""
            pending.extend((prefix + name, level + 1) for name in seen.subdirs if level < depth)
            skipped.extend(Skipped(prefix + name, reason) for name, reason in seen.odd)
            yield rel_dir, seen

    def _remember(self, path: Path) -> _Seen:
        """What the folder at `path` holds: the last _Seen while the folder's key has not
        changed, else one scandir, stat'ing only the files whose name or inode is new."""
        st = os.stat(path, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):  # swapped for a link since its parent was listed
            raise OSError(errno.ELOOP, "a symbolic link")
        key = (st.st_mtime_ns, st.st_ino, st.st_size)
        before = self._seen.get(str(path))
        if before is not None and before.key == key and before.settled:
            self._seen.move_to_end(str(path))
            return before
        settled = time.time_ns() - st.st_mtime_ns > RACY_NS
        with os.scandir(path) as it:
            found = [(e.name, e.inode(), _kind(e), e) for e in it if not e.name.startswith(".")]
        names = frozenset((name, ino, kind) for name, ino, kind, _ in found)
        if before is not None and before.names == names:
            seen = replace(before, key=key, settled=settled)
        else:
            seen = _Seen(key, settled, names, *_sort_out(found), _stats(found, before), next(self._versions))
        self._seen[str(path)] = seen
        self._seen.move_to_end(str(path))
        while len(self._seen) > self._max_folders:
            self._seen.popitem(last=False)
        return seen


_Found = list[tuple[str, int, str, os.DirEntry[str]]]  # (name, inode, kind, entry) from one scandir


def _sort_out(found: _Found) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The subfolders of a folder, and what is left out of it with the reason."""
    subdirs = tuple(name for name, _, kind, _ in found if kind == "dir")
    odd = tuple(
        (name, "a symbolic link: never followed" if kind == "link" else "not a plain file")
        for name, _, kind, _ in found
        if kind == "link" or (kind == "other" and name.lower().endswith(IMAGE_EXTENSIONS))
    )
    return subdirs, odd


def _stats(found: _Found, before: _Seen | None) -> dict[tuple[str, int], tuple[int, int]]:
    """(size, mtime_ns) of each image and caption file, stat'ed only when its name or inode is new."""
    old = before.stats if before is not None else {}
    stats: dict[tuple[str, int], tuple[int, int]] = {}
    for name, ino, kind, entry in found:
        if kind != "file" or not name.lower().endswith(IMAGE_EXTENSIONS + CAPTION_EXTENSIONS):
            continue
        if (name, ino) in old:
            stats[(name, ino)] = old[(name, ino)]
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:  # gone since scandir saw it
            continue
        stats[(name, ino)] = (st.st_size, st.st_mtime_ns)
    return stats


def _kind(entry: os.DirEntry[str]) -> str:
    """'file', 'dir', 'link' or 'other', from scandir's d_type (no stat where the system gives it)."""
    try:
        if entry.is_symlink():
            return "link"
        if entry.is_file(follow_symlinks=False):
            return "file"
        if entry.is_dir(follow_symlinks=False):
            return "dir"
    except OSError:
        pass
    return "other"


def _pair(rel_dir: str, seen: _Seen) -> Iterator[Entry]:
    """The images of one folder, each with its caption and mask file if there is one."""
    prefix = f"{rel_dir}/" if rel_dir else ""
    files = {name: st for (name, _), st in seen.stats.items()}
    captions: dict[tuple[str, str], str] = {}
    masks: dict[str, str] = {}
    images = []
    for name in sorted(files):
        stem, ext = os.path.splitext(name)
        low = ext.lower()
        if name.lower().endswith(MASK_SUFFIX):
            masks.setdefault(name[: -len(MASK_SUFFIX)], prefix + name)
        elif low in CAPTION_EXTENSIONS:
            captions.setdefault((stem, low), prefix + name)
        elif low in IMAGE_EXTENSIONS:
            images.append((name, stem))
    for name, stem in images:
        size, mtime_ns = files[name]
        caption = next((captions[(stem, ext)] for ext in CAPTION_EXTENSIONS if (stem, ext) in captions), None)
        yield Entry(prefix + name, stem, size, mtime_ns, caption, masks.get(stem))


_DEFAULT = Scanner()


def scan(root: str | os.PathLike[str], depth: int = 0) -> Listing:
    """List `root` with the process's shared Scanner (see `Scanner.scan`)."""
    return _DEFAULT.scan(root, depth)
