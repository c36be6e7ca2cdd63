"""The decisions made about a dataset's files, kept in one journal inside the dataset's folder.

`.dataset-gates-journal.jsonl` is the only file the pack ever writes into a dataset's folder.
It lives there, not in the bus, so the decisions travel with the dataset (copied, synced,
opened by another ComfyUI) and a dataset never read again leaves nothing behind elsewhere.

The format is append-only JSON lines, one record a line: a decision, a claim or a release.
Each write appends its lines with one `write` on an O_APPEND descriptor and fsyncs before the
call returns, under an exclusive lock. Why this and not a compacted file replaced whole:
- kill -9 at any moment: a decision whose call returned was fsync'd, so it is never lost; a
  write the kill cut short leaves at most an unfinished last line, which readers ignore (and
  report) and the next writer cuts off, under the lock, before appending; that decision's
  call never returned, so nothing acknowledged is lost, and nothing is decided twice.
- the cost of a decision is one small write and one fsync, whatever the size of the journal;
  a replaced file would rewrite every earlier decision each time.
- readers only ever read what was appended since they last looked.
A replaced file survives kill -9 too (the rename is atomic), but costs the whole file per
decision and a second, temporary, file in the dataset's folder.

Two tabs or two processes: every write takes an exclusive lock on the journal (`locks.held`),
re-reads what others appended, then checks and appends. A run first `claim`s the undecided
files of its page (a claim ends when its owner releases it, decides the file, or its time
runs out), so another run's "not yet decided" page leaves them out; `decide` refuses a file
decided already (unless `redo`) or claimed by another owner. A claim whose owner process is
gone (`owner.owner_alive`: a ComfyUI killed with -9) holds nothing, so its files come back at
once in the restarted server's "not yet decided" page; one whose owner still runs on this
machine holds while its page is paused, however long; one from another machine holds until its
time to live (at most MAX_CLAIM_S, whatever a record says) runs out. Hostile folders: a link planted
as the journal is refused (O_NOFOLLOW), as is a hard link (the journal could be another file)
or anything but a plain file; lines that are not records are ignored and reported.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..bus.local.atomic import fsync_dir
from .captions import MAX_CAPTION_BYTES
from .errors import DatasetError, JournalError
from .locks import held
from .names import split_rel
from .owner import owner_alive
from .progress import Progress, count

JOURNAL_NAME = ".dataset-gates-journal.jsonl"
RECORD_FORMAT = 1
DEFAULT_CLAIM_S = 30 * 60.0
MAX_CLAIM_S = 24 * 3600.0
MAX_ROUTE = 9999
MAX_LABEL = 200
MAX_OWNER = 200
MAX_WARNINGS = 20
_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_FLAGS |= getattr(os, "O_BINARY", 0)


@dataclass(frozen=True)
class Decision:
    """What a gate decided for one file.

    Attributes:
        path: the file's path inside the dataset (an `Entry.rel`).
        route: the route it went down (0-based).
        label: that route's name ("keep"), for progress lines.
        caption: the caption as edited at the gate, or None when it was not edited.
        owner: the run that decided (set by `Journal.decide`).
        time: when, in seconds since the epoch (set by `Journal.decide`).
        width, height: the image's size as it was decided (0 when unknown), so the buckets of
            a route's files can be counted without opening them again.
    """

    path: str
    route: int
    label: str = ""
    caption: str | None = None
    owner: str = ""
    time: float = 0.0
    width: int = 0
    height: int = 0

    @property
    def caption_edited(self) -> bool:
        return self.caption is not None


@dataclass(frozen=True)
class Decided:
    """What `Journal.decide` did: the decisions written, and (path, reason) for each refused."""

    written: tuple[Decision, ...]
    refused: tuple[tuple[str, str], ...]


class Journal:
    """The journal of the dataset folder `root`.

    Every method reads what was appended since the last call first, so one Journal object
    stays current however many tabs or processes write; keep one per dataset, or make one
    per call (reading a 5,000-decision journal from scratch takes milliseconds).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        alive: Callable[[str], bool | None] = owner_alive,
    ) -> None:
        """Args:
        root: the dataset folder, resolved (a `Listing.root`).
        clock: seconds since the epoch, for decision times and claim expiry (tests pass their own).
        alive: whether a claim's owner still runs (`owner.owner_alive`: True, False, or None
            when nothing here can tell); a dead owner's claims hold nothing, a live one's
            hold until released, an unknown one's until their time runs out.
        """
        self.root = Path(root)
        self.path = self.root / JOURNAL_NAME
        self._clock = clock
        self._alive = alive
        self._identity: tuple[int, int] | None = None
        self._offset = 0
        self._lines = 0
        self._decisions: dict[str, Decision] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._warnings: list[str] = []
        self._torn_at = -1

    # reading

    def decisions(self) -> dict[str, Decision]:
        """The current decision for each decided path (a copy)."""
        self._read()
        return dict(self._decisions)

    def held_by_others(self, owner: str) -> frozenset[str]:
        """The paths claimed, by a claim still running, by an owner other than `owner`."""
        self._read()
        now = self._clock()
        states = {o: self._alive(o) for o, _ in self._claims.values() if o != owner}
        return frozenset(p for p, (o, until) in self._claims.items() if o != owner and _holds(states[o], until, now))

    def progress(self, paths: Iterable[str]) -> Progress:
        """Counts of the files `paths` (a listing's rels): total, decided, by route and label."""
        self._read()
        return count(paths, self._decisions)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What was ignored while reading: lines that are not records, an unfinished last line."""
        return tuple(self._warnings)

    # writing

    def claim(self, paths: Sequence[str], owner: str, ttl_s: float = DEFAULT_CLAIM_S) -> tuple[str, ...]:
        """Reserve undecided files for `owner`'s page, so another run's page leaves them out.

        Args:
            paths: the page's files.
            owner: the run claiming them (its prompt or run id).
            ttl_s: seconds until the claim lapses if its owner neither decides nor releases.

        Returns:
            The paths claimed, in order: those not decided and not held by another owner.
        """
        for p in paths:
            split_rel(p)
        _check_owner(owner)
        if not 0 < ttl_s <= MAX_CLAIM_S:
            raise DatasetError(f"a claim's time to live is above 0 and at most {MAX_CLAIM_S:.0f} s")

        def records() -> list[dict[str, Any]]:
            now = self._clock()
            free = [p for p in dict.fromkeys(paths) if p not in self._decisions and not self._held(p, owner, now)]
            return [{"kind": "claim", "owner": owner, "paths": free, "until": now + ttl_s, "time": now}] if free else []

        written = self._append(records)
        return tuple(written[0]["paths"]) if written else ()

    def release(self, owner: str, paths: Sequence[str] | None = None) -> None:
        """End `owner`'s claims: on `paths`, or all of them when None (a run stopped)."""
        for p in paths or ():
            split_rel(p)
        _check_owner(owner)
        record = {"kind": "release", "owner": owner, "paths": None if paths is None else list(paths)}
        self._append(lambda: [{**record, "time": self._clock()}])

    def decide(
        self, decisions: Iterable[Decision], owner: str, *, redo: bool = False, all_or_nothing: bool = False
    ) -> Decided:
        """Record decisions, each fsync'd before this returns.

        Args:
            decisions: one per file (`owner` and `time` are filled in here).
            owner: the run deciding.
            redo: replace earlier decisions of these files instead of refusing them; a redo
                without a caption keeps the caption edited before (reviewing a file's route
                does not undo its caption).
            all_or_nothing: write none of them when any is refused (a gate's page: its images
                go on only if every decision was kept).

        Returns:
            Decided: the decisions written, and the refused ones with why (decided already,
            claimed by another run, or twice in this call). Nothing is raised for those, so a
            page records every decision it can.

        Raises:
            DatasetError: a decision that is malformed (a path leaving the dataset, a route out
                of 0..MAX_ROUTE, a label or caption too long).
            JournalError: the journal cannot be written.
        """
        _check_owner(owner)
        wanted = [_checked(d) for d in decisions]
        refused: list[tuple[str, str]] = []

        def records() -> list[dict[str, Any]]:
            now = self._clock()
            out: list[dict[str, Any]] = []
            seen: set[str] = set()
            for d in wanted:
                reason = (
                    "twice in one call"
                    if d.path in seen
                    else "decided already"
                    if d.path in self._decisions and not redo
                    else "claimed by another run"
                    if self._held(d.path, owner, now)
                    else None
                )
                seen.add(d.path)
                if reason:
                    refused.append((d.path, reason))
                    continue
                earlier = self._decisions.get(d.path)
                if d.caption is None and earlier is not None:
                    d = replace(d, caption=earlier.caption)
                out.append(_decision_record(replace(d, owner=owner, time=now), redo))
            return [] if refused and all_or_nothing else out

        written = self._append(records)
        return Decided(tuple(_decision(r) for r in written), tuple(refused))

    # the file

    def _held(self, path: str, owner: str, now: float) -> bool:
        claim = self._claims.get(path)
        return claim is not None and claim[0] != owner and _holds(self._alive(claim[0]), claim[1], now)

    def _open(self, write: bool) -> int | None:
        """The journal's descriptor (None when reading one that does not exist yet)."""
        if os.name == "nt" and os.path.islink(self.path):
            raise JournalError(f"{JOURNAL_NAME} is a symbolic link: refused, remove it")
        flags = (os.O_RDWR | os.O_APPEND | os.O_CREAT) if write else os.O_RDONLY
        try:
            fd = os.open(self.path, flags | _FLAGS, 0o644)
        except FileNotFoundError:
            if write:
                raise JournalError("the dataset folder is gone") from None
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise JournalError(f"{JOURNAL_NAME} is a symbolic link: refused, remove it") from None
            raise JournalError(f"the journal cannot be {'written' if write else 'read'} ({exc.strerror})") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            raise JournalError(f"{JOURNAL_NAME} is not a plain file of its own (a device or a hard link): refused")
        return fd

    def _read(self) -> None:
        fd = self._open(write=False)
        if fd is None:
            self._reset(None)
            return
        try:
            with held(str(self.path), fd, shared=True):
                self._catch_up(fd)
        finally:
            os.close(fd)

    def _append(self, build: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Under the exclusive lock: cut a dead writer's unfinished line, read what others
        appended, then append `build()`'s records (built from the state now current) and fsync."""
        fd = self._open(write=True)
        assert fd is not None
        try:
            with held(str(self.path), fd):
                new_file = os.fstat(fd).st_size == 0
                self._cut_torn_tail(fd)
                self._catch_up(fd)
                records = [{"v": RECORD_FORMAT, **r} for r in build()]
                if records:
                    data = b"".join(json.dumps(r, ensure_ascii=True).encode() + b"\n" for r in records)
                    _append_all(fd, data, new_file, self.root)
                    self._catch_up(fd)
                return records
        finally:
            os.close(fd)

    def _cut_torn_tail(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0 or _read_at(fd, size - 1, 1) == b"\n":
            return
        end = size
        while end > 0:  # find the last complete line's end, a block at a time from the back
            start = max(0, end - 65536)
            block = _read_at(fd, start, end - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        os.ftruncate(fd, end)
        os.fsync(fd)
        self._warn(f"an unfinished last line ({size - end} bytes, a writer stopped mid-line) was cut off")

    def _reset(self, identity: tuple[int, int] | None) -> None:
        self._identity, self._offset, self._lines, self._torn_at = identity, 0, 0, -1
        self._decisions, self._claims = {}, {}

    def _catch_up(self, fd: int) -> None:
        """Apply the complete lines appended since the last read; note an unfinished last one."""
        st = os.fstat(fd)
        identity = (st.st_dev, st.st_ino)
        if identity != self._identity or st.st_size < self._offset:  # a new or rewritten file
            self._reset(identity)
        if st.st_size == self._offset:
            return
        chunk = _read_at(fd, self._offset, st.st_size - self._offset)
        end = chunk.rfind(b"\n") + 1
        for line in chunk[:end].split(b"\n")[:-1]:
            self._lines += 1
            self._apply(line)
        self._offset += end
        if end < len(chunk) and self._torn_at != self._offset:
            self._torn_at = self._offset
            self._warn(f"line {self._lines + 1} is unfinished (a writer stopped mid-line): ignored")

    def _apply(self, line: bytes) -> None:
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or rec.get("v") != RECORD_FORMAT:
                raise ValueError
            kind = rec.get("kind")
            if kind == "decide":
                d = _decision(rec)
                if d.path in self._decisions and not rec.get("redo"):
                    self._warn(f"line {self._lines}: {d.path} decided a second time without redo: ignored")
                    return
                self._decisions[d.path] = d
                self._claims.pop(d.path, None)
            elif kind == "claim":
                owner, until, when = _str(rec["owner"]), float(rec["until"]), float(rec["time"])
                if not (math.isfinite(until) and math.isfinite(when)):
                    raise ValueError("time")
                until = min(until, when + MAX_CLAIM_S)  # a crafted line cannot hide files for good
                for p in rec["paths"]:
                    self._claims[_str(p)] = (owner, until)
            elif kind == "release":
                owner, paths = _str(rec["owner"]), rec["paths"]
                for p in list(self._claims) if paths is None else paths:
                    if self._claims.get(p, ("",))[0] == owner:
                        del self._claims[p]
            else:
                raise ValueError
        except (ValueError, TypeError, KeyError):
            self._warn(f"line {self._lines} is not a journal record: ignored")

    def _warn(self, text: str) -> None:
        if len(self._warnings) < MAX_WARNINGS:
            self._warnings.append(text)


def _holds(alive: bool | None, until: float, now: float) -> bool:
    """A claim holds while its owner runs here, or (owner unknown) until its time runs out."""
    return alive is True or (alive is None and until > now)


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str) or not 0 < len(owner) <= MAX_OWNER:
        raise DatasetError(f"an owner is a run's id of 1 to {MAX_OWNER} characters")


def _checked(d: Decision) -> Decision:
    """`d`, or DatasetError if it could not be stored and read back as it is."""
    split_rel(d.path)
    if isinstance(d.route, bool) or not isinstance(d.route, int) or not 0 <= d.route <= MAX_ROUTE:
        raise DatasetError(f"{d.path}: a route is a whole number from 0 to {MAX_ROUTE}")
    if not isinstance(d.label, str) or len(d.label) > MAX_LABEL:
        raise DatasetError(f"{d.path}: a label is text of at most {MAX_LABEL} characters")
    if not all(type(n) is int and 0 <= n <= 1 << 20 for n in (d.width, d.height)):
        raise DatasetError(f"{d.path}: an image size is two whole numbers from 0")
    if d.caption is not None and (
        not isinstance(d.caption, str) or len(d.caption.encode("utf-8", "surrogatepass")) > MAX_CAPTION_BYTES
    ):
        raise DatasetError(f"{d.path}: a caption is text of at most {MAX_CAPTION_BYTES:,} bytes")
    return d


def _decision_record(d: Decision, redo: bool) -> dict[str, Any]:
    return {
        "kind": "decide",
        "path": d.path,
        "route": d.route,
        "label": d.label,
        "edited": d.caption_edited,
        "caption": d.caption,
        "owner": d.owner,
        "time": d.time,
        "redo": redo,
        "size": [d.width, d.height],
    }


def _decision(rec: dict[str, Any]) -> Decision:
    """A Decision from its record; TypeError/KeyError/ValueError when the record is not one."""
    route, caption, when = rec["route"], rec["caption"], rec["time"]
    if isinstance(route, bool) or not isinstance(route, int) or not isinstance(when, (int, float)):
        raise TypeError("route or time")
    if caption is not None and not isinstance(caption, str):
        raise TypeError("caption")
    path = _str(rec["path"])
    split_rel(path)  # a DatasetError is a ValueError
    size = rec.get("size", [0, 0])
    if not isinstance(size, list) or len(size) != 2 or not all(type(n) is int and n >= 0 for n in size):
        raise TypeError("size")
    return Decision(path, route, _str(rec["label"]), caption, _str(rec["owner"]), float(when), size[0], size[1])


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def _read_at(fd: int, offset: int, size: int) -> bytes:
    """`size` bytes at `offset` (fewer at the end of the file), whatever the descriptor's position."""
    chunks = []
    while size > 0:
        if hasattr(os, "pread"):
            chunk = os.pread(fd, size, offset)
        else:  # Windows
            os.lseek(fd, offset, os.SEEK_SET)
            chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _append_all(fd: int, data: bytes, new_file: bool, root: Path) -> None:
    """Append `data` and fsync it, or leave the journal as it was: a write a full disk cuts
    short (ENOSPC, EIO) is cut back off, so no call's decisions are ever kept in part."""
    size = os.fstat(fd).st_size
    try:
        _write_all(fd, data)
        os.fsync(fd)
        if new_file:
            fsync_dir(root)
    except OSError as exc:
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError:
            pass  # the torn tail is cut by the next writer, and ignored by readers meanwhile
        raise JournalError(
            f"the journal cannot be written ({exc.strerror or exc}): nothing of this call was kept"
        ) from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
