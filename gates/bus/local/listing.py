"""The folder bus's listing, remembered between calls, and the token that says it changed.

Listing a slot reads its header (an open, two reads, a JSON parse): about 0.1 ms, so over a
second for 10,000 slots. A listing here keeps each slot's row in memory under what its files
looked like, and a re-list of an unchanged bus costs one scandir of the bus folder and one
stat: how `SlotStore.list`, its `listing_token` and so `/bus/list`'s ETag stay cheap.

Why the rows it returns are never stale:

- Every change the pack makes to a bus (publish, history trim, migration, delete, rename, pin,
  policy) ends by appending one byte to `.generation` in the bus folder (`bump`), in whichever
  process made it, the change failed or not. A listing stats that file *before* it reads any
  slot and files its rows under what it saw. The file only grows (past MAX_GENERATION_BYTES a
  new file, a new inode, replaces it), so its (inode, size) differs after every change however
  coarse the clock; rows read while a change ran were filed under the older generation and are
  checked again on the next call.
- Writers never touch this memory, only that file: a change from this process, from the
  command line and from `gates serve` are noticed the same way.
- A slot folder that appears or vanishes is seen by the scandir itself, whoever made it.
- When the generation changed, every slot is checked by stat: its folder (a pin, a
  thumbnail, a history folder made), its slot file (any rewrite, in place too) and its
  history folder (versions trimmed); only slots whose stats changed are read again. A stat
  within RACY_NS of the listing's start may not show a second change in the same clock tick
  (FAT keeps 2 s), so such a row is read again on every check until it is older (git's
  "racily clean" entries).
- A change made without the pack (a file copied into a slot folder by hand) bumps nothing:
  every FULL_CHECK_S the stats are checked anyway, so it shows within that time.
- Damaged rows are never kept: they are read again on every listing, so a passing I/O error
  is not remembered.

A new process (each `gates ls`, a restarted ComfyUI) starts with the rows another process
saved in `<bus>/.listing.json` (LISTING_FILE): the same rows under the same stats, so they
obey the same rule. Its first listing checks every slot's stats, as any full check does, and
takes a saved row only where they match; any other slot is read. The file is written whole
(a temp file renamed over it) by a listing that had to read PERSIST_MIN_READS rows or more,
and it is a cache from a shared folder, read as untrusted: size-capped, never through a
link, every row type-checked, and anything wrong in it only means those slots are read.

The token is a hash of the generation, the policy file's stat, the slot names and what each
row was filed under: equal for an unchanged bus, in every process that lists it.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from .. import json_limits
from ..contract import SlotInfo
from ..ids import is_slot_name
from ..rows import FIELDS, Columns, to_list
from .atomic import atomic_write

GENERATION_FILE = ".generation"
MAX_GENERATION_BYTES = 1 << 20  # a million changes, then a fresh file
RACY_NS = 3_000_000_000  # a stat this recent may hide a second change in one tick (FAT: 2 s)
FULL_CHECK_S = 5.0  # how soon a change made without the pack shows
LISTING_FILE = ".listing.json"  # the rows a new process starts with (see the module's docstring)
LISTING_FORMAT = "dataset-gates.listing"
MAX_LISTING_BYTES = 512 << 20  # 10,000 slots take ~3 MB; parked runs' prompts add their size
PERSIST_MIN_READS = 100  # slot files read by one listing (~20 ms) before the saved rows are renewed

log = logging.getLogger("dataset_gates")

StatKey = tuple[int, int, int, int]
"""(inode, size, mtime_ns, ctime_ns): what changes when a file or folder does."""

ReadRow = Callable[[str, Path], "tuple[SlotInfo, bool] | None"]
"""Read slot `id` in its folder: (its row, whether it has a history folder), or None when the
folder is no slot (anymore). Damage is a row with `error` set."""


def bump(root: Path) -> None:
    """Say that the bus at `root` changed: one byte appended to its generation file.

    Called after every change, by whichever process made it. A bump that fails removes the
    file, so listings check every slot's stats until the next bump makes a new one.
    """
    path = root / GENERATION_FILE
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
        try:
            full = os.fstat(fd).st_size >= MAX_GENERATION_BYTES
            os.write(fd, b".")
        finally:
            os.close(fd)
        if full:  # a new inode: its key differs from every key of the old file
            with atomic_write(path, lambda tmp: Path(tmp).write_bytes(b".")) as commit:
                commit()
    except FileNotFoundError:
        return  # no bus folder: nothing to list either
    except OSError as exc:
        with suppress(OSError):
            os.unlink(path)
        log.warning("could not mark %s as changed (%s): its listings check every slot", root.name, exc.strerror)


def _key(st: os.stat_result) -> StatKey:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _lstat_key(path: str) -> StatKey | None:
    try:
        return _key(os.lstat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _entry_key(entry: os.DirEntry[str] | None, regular: bool = True) -> StatKey | None:
    """The key of a scandir entry, without following a link; None if absent (or, with
    `regular`, not a plain file: a planted link or folder is no generation)."""
    if entry is None:
        return None
    try:
        st = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
    return _key(st) if not regular or stat.S_ISREG(st.st_mode) else None


@dataclass
class _Row:
    info: SlotInfo
    key: tuple[StatKey | None, ...]  # the folder's, the slot file's, the history folder's
    history: bool  # the folder held `history/` when read
    trusted: bool  # whole, and every stat older than RACY_NS when read


@dataclass
class _State:
    generation: StatKey | None
    checked: float  # time.monotonic() of the last check of every slot's stats
    names: tuple[str, ...]  # the slot folders, in scandir order
    rows: dict[str, _Row]
    ordered: list[SlotInfo]  # newest first
    digest: str  # of names and rows: part of the token
    untrusted: bool  # some row must be read again on every listing (damaged)


class Listing:
    """The remembered listing of one bus folder; one per folder in a process (see `of`)."""

    def __init__(self, root: Path, slot_file: str):
        self.root = root
        self.slot_file = slot_file
        self._state: _State | None = None

    def _scan(self) -> tuple[list[os.DirEntry[str]], dict[str, os.DirEntry[str]]]:
        """The bus folder's slot folders (links skipped) and its dot-files, one scandir."""
        try:
            with os.scandir(self.root) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return [], {}
        folders = [e for e in entries if is_slot_name(e.name) and e.is_dir(follow_symlinks=False)]
        return folders, {e.name: e for e in entries if e.name.startswith(".")}

    def get(self, read_row: ReadRow, policy_file: str) -> tuple[list[SlotInfo], str]:
        """Every slot's row, newest first, and the listing's token. The rows are shared with
        later calls: read them, never change them."""
        start = time.time_ns()
        folders, dots = self._scan()
        generation = _entry_key(dots.get(GENERATION_FILE))  # before any slot is read
        policy = _entry_key(dots.get(policy_file), regular=False)
        names = tuple(e.name for e in folders)
        old = self._state
        full = (
            old is None
            or generation is None
            or generation != old.generation
            or time.monotonic() - old.checked >= FULL_CHECK_S
        )
        if old is not None and not full and not old.untrusted and names == old.names:
            return list(old.ordered), _token(generation, policy, old.digest)
        checked = time.monotonic() if full else (old.checked if old else 0.0)
        saved = self._load() if old is None else {}  # a new process: what another one saved
        rows: dict[str, _Row] = {}
        reads = 0
        for entry in folders:
            kept = old.rows.get(entry.name) if old is not None else saved.get(entry.name)
            if kept is not None and not full and kept.trusted:
                rows[entry.name] = kept
            elif (row := self._check(entry, kept, read_row, start)) is not None:
                rows[entry.name] = row
                reads += row is not kept and row.trusted
        ordered = sorted((r.info for r in rows.values()), key=lambda s: s.created, reverse=True)
        state = _State(
            generation,
            checked,
            names,
            rows,
            ordered,
            _digest(rows),
            any(not r.trusted and r.info.error for r in rows.values()),
        )
        self._state = state  # one reference swap: a concurrent listing's state is as good
        if reads >= PERSIST_MIN_READS:
            self._save(rows)
        return list(ordered), _token(generation, policy, state.digest)

    def _load(self) -> dict[str, _Row]:
        """The rows saved in LISTING_FILE, each trusted under the stats it was read with;
        nothing when there is no such file or it is not one of ours (see `_parse_saved`)."""
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.root / LISTING_FILE, flags)  # a planted FIFO does not block the open
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_LISTING_BYTES:
                return {}
            with open(fd, "rb", closefd=False) as f:
                data = f.read(MAX_LISTING_BYTES + 1)
        except OSError:
            return {}
        finally:
            os.close(fd)
        try:
            with json_limits.gc_paused():
                return _parse_saved(data, self.slot_file)
        except (ValueError, TypeError):
            return {}

    def _save(self, rows: dict[str, _Row]) -> None:
        """Save the trusted rows for the next process, whole or not at all (best effort: a
        bus folder it cannot write to is listed all the same, by reading its slots)."""
        doc = {
            "format": LISTING_FORMAT,
            "slot_file": self.slot_file,
            "fields": FIELDS,
            "rows": {name: [*r.key, r.history, to_list(r.info)] for name, r in rows.items() if r.trusted},
        }
        path = self.root / LISTING_FILE
        tmp = path.with_name(f".{LISTING_FILE}.{os.getpid()}.{secrets.token_hex(6)}.tmp")  # atomic's temp names
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            data = json_limits.dumps(doc, separators=(",", ":")).encode()
            with open(os.open(tmp, flags, 0o644), "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except (OSError, ValueError) as exc:
            with suppress(OSError):
                os.unlink(tmp)
            log.debug("could not save the listing of %s: %s", self.root.name, exc)

    def _check(self, entry: os.DirEntry[str], kept: _Row | None, read_row: ReadRow, start: int) -> _Row | None:
        """The slot's row: `kept` when its stats are what it was read under, else read again.

        The stats are taken before the read, so a change made during the read shows in the
        next check's stats.
        """
        folder = entry.path
        key = (
            _entry_key(entry, regular=False),
            _lstat_key(os.path.join(folder, self.slot_file)),
            _lstat_key(os.path.join(folder, "history")) if kept is None or kept.history else None,
        )
        if kept is not None and kept.trusted and kept.key == key:
            return kept
        got = read_row(entry.name, Path(folder))
        if got is None:
            return None
        info, history = got
        if kept is None and not history:
            key = (key[0], key[1], None)  # no history folder, so none to watch
        settled = all(k is None or k[3] < start - RACY_NS for k in key)
        return _Row(info, key, history, settled and key[1] is not None and not info.error)


def _stored_key(raw: Any) -> StatKey | None:
    """A StatKey as saved (a list of four integers, or null); TypeError for anything else."""
    if raw is None:
        return None
    if type(raw) is list and len(raw) == 4:
        ino, size, mtime, ctime = raw
        if type(ino) is int and type(size) is int and type(mtime) is int and type(ctime) is int:
            return (ino, size, mtime, ctime)
    raise TypeError


def _parse_saved(data: bytes, slot_file: str) -> dict[str, _Row]:
    """The rows of a LISTING_FILE: `[folder key, slot file key, history key, history, info]`
    by slot name. ValueError or TypeError when it is no listing of ours; a row that is
    unreadable (or damaged, or of a slot file under another name) is left out: read again."""
    raw = json_limits.loads(data, max_depth=json_limits.MAX_DEPTH + 8)
    if type(raw) is not dict or raw.get("format") != LISTING_FORMAT or raw.get("slot_file") != slot_file:
        raise ValueError("not a listing of ours")
    stored = raw.get("rows")
    if type(stored) is not dict:
        raise ValueError("not a listing of ours")
    columns = Columns(raw.get("fields"))
    out = {}
    for name, row in stored.items():
        if not is_slot_name(name):
            continue
        try:
            folder, file, history_dir, history, values = row
            key = (_stored_key(folder), _stored_key(file), _stored_key(history_dir))
            info = columns.info(name, values)
            if key[1] is None or type(history) is not bool or info.error is not None:
                raise TypeError
        except (TypeError, ValueError):
            continue
        out[name] = _Row(info, key, history, True)
    return out


def _digest(rows: dict[str, _Row]) -> str:
    """What the rows were read under (or, for a row read again every time, the row itself)."""
    h = xxhash.xxh3_128()
    for name in sorted(rows):
        row = rows[name]
        h.update(f"{name}\0{row.key if row.trusted else repr(row.info)}\n".encode())
    return h.hexdigest()


def _token(generation: StatKey | None, policy: StatKey | None, digest: str) -> str:
    return xxhash.xxh3_128_hexdigest(f"{generation}|{policy}|{digest}".encode())


_listings: dict[str, Listing] = {}
_listings_lock = threading.Lock()


def of(root: Path, slot_file: str) -> Listing:
    """The one remembered listing of the bus folder `root` in this process."""
    where = os.path.abspath(root)
    with _listings_lock:
        listing = _listings.get(where)
        if listing is None:
            listing = _listings[where] = Listing(Path(where), slot_file)
        return listing
