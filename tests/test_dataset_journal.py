"""The decisions journal: kept across restarts and kill -9, one decision per file across tabs
and processes, claims that expire, and hostile journals refused."""

from __future__ import annotations

import errno
import json
import multiprocessing
import multiprocessing.forkserver
import os
import random
import signal
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from gates.dataset.errors import DatasetError, JournalError
from gates.dataset.journal import JOURNAL_NAME, Decision, Journal
from gates.dataset.progress import Progress, RouteCount, format_progress


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def records(root: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (root / JOURNAL_NAME).read_bytes().splitlines()]


def test_decisions_survive_a_new_journal_object(tmp_path: Path) -> None:
    clock = Clock()
    j = Journal(tmp_path, clock=clock)
    done = j.decide([Decision("a.png", 0, "keep"), Decision("sub/b.png", 2, "fix", caption="a cat\r\nnew")], "run-1")
    assert done.refused == () and [d.path for d in done.written] == ["a.png", "sub/b.png"]
    again = Journal(tmp_path).decisions()
    assert again == {d.path: d for d in done.written}
    b = again["sub/b.png"]
    assert (b.route, b.label, b.caption, b.caption_edited, b.owner, b.time) == (
        2,
        "fix",
        "a cat\r\nnew",
        True,
        "run-1",
        clock.now,
    )
    assert not again["a.png"].caption_edited
    assert (tmp_path / JOURNAL_NAME).read_bytes().endswith(b"\n") and len(records(tmp_path)) == 2


def test_a_file_is_not_decided_twice_unless_redo(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.decide([Decision("a.png", 0, "keep")], "tab-1")
    second = Journal(tmp_path).decide([Decision("a.png", 1, "drop"), Decision("b.png", 1, "drop")], "tab-2")
    assert second.refused == (("a.png", "decided already"),) and [d.path for d in second.written] == ["b.png"]
    assert j.decisions()["a.png"].route == 0
    redone = j.decide([Decision("a.png", 1, "drop")], "tab-1", redo=True)
    assert redone.refused == () and Journal(tmp_path).decisions()["a.png"].label == "drop"


def test_the_same_file_twice_in_one_call_is_refused_once(tmp_path: Path) -> None:
    done = Journal(tmp_path).decide([Decision("a.png", 0), Decision("a.png", 1)], "run")
    assert done.refused == (("a.png", "twice in one call"),) and done.written[0].route == 0


def test_claims_keep_a_second_tab_off_a_page_until_released_or_expired(tmp_path: Path) -> None:
    clock = Clock()
    a, b = Journal(tmp_path, clock=clock), Journal(tmp_path, clock=clock)
    assert a.claim(["1.png", "2.png", "3.png"], "tab-a", ttl_s=60) == ("1.png", "2.png", "3.png")
    assert b.held_by_others("tab-b") == {"1.png", "2.png", "3.png"} and a.held_by_others("tab-a") == set()
    assert b.claim(["2.png", "4.png"], "tab-b") == ("4.png",)
    refused = b.decide([Decision("1.png", 0)], "tab-b")
    assert refused.refused == (("1.png", "claimed by another run"),)
    assert a.decide([Decision("1.png", 0)], "tab-a").refused == ()
    a.release("tab-a", ["2.png"])
    assert b.held_by_others("tab-b") == {"3.png"}
    clock.now += 61
    assert b.held_by_others("tab-b") == set() and b.claim(["3.png"], "tab-b") == ("3.png",)
    b.release("tab-b")
    assert a.held_by_others("tab-a") == set()


def test_claim_skips_decided_files(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.decide([Decision("a.png", 0)], "run")
    assert j.claim(["a.png", "b.png"], "run") == ("b.png",)
    assert j.claim(["a.png"], "run") == () and len(records(tmp_path)) == 2  # nothing to claim: nothing written


def test_progress_counts_the_listing_by_route_and_label(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.decide([Decision("a.png", 0, "keep"), Decision("b.png", 0, "keep"), Decision("c.png", 1, "drop")], "run")
    j.decide([Decision("gone.png", 2, "fix")], "run")
    progress = j.progress(["a.png", "b.png", "c.png", "d.png"])
    assert progress == Progress(4, 3, (RouteCount(0, "keep", 2), RouteCount(1, "drop", 1)))
    assert progress.undecided == 1
    assert format_progress(progress) == "3 / 4 decided: 2 keep · 1 drop"


def test_the_progress_line() -> None:
    p = Progress(5000, 1234, (RouteCount(0, "keep", 900), RouteCount(1, "drop", 300), RouteCount(2, "fix", 34)))
    assert format_progress(p) == "1,234 / 5,000 decided: 900 keep · 300 drop · 34 fix"
    assert format_progress(Progress(10, 0, ())) == "0 / 10 decided"
    assert format_progress(Progress(2, 1, (RouteCount(3, "", 1),))) == "1 / 2 decided: 1 route 3"


@pytest.mark.parametrize(
    ("decision", "match"),
    [
        (Decision("../a.png", 0), "leaves its folder"),
        (Decision("/etc/passwd", 0), "not a relative path"),
        (Decision("a.png", -1), "route is a whole number"),
        (Decision("a.png", True), "route is a whole number"),
        (Decision("a.png", 0, "x" * 201), "label is text"),
        (Decision("a.png", 0, caption="x" * (1 << 20 + 1)), "caption is text"),
    ],
)
def test_a_malformed_decision_is_refused_before_anything_is_written(
    tmp_path: Path, decision: Decision, match: str
) -> None:
    with pytest.raises(DatasetError, match=match):
        Journal(tmp_path).decide([Decision("ok.png", 0), decision], "run")
    assert not (tmp_path / JOURNAL_NAME).exists()


def test_an_unfinished_last_line_is_ignored_reported_and_cut_by_the_next_writer(tmp_path: Path) -> None:
    Journal(tmp_path).decide([Decision("a.png", 0, "keep")], "run")
    with open(tmp_path / JOURNAL_NAME, "ab") as f:
        f.write(b'{"v": 1, "kind": "decide", "path": "b.png", "rou')  # a writer killed mid-line
    reader = Journal(tmp_path)
    assert list(reader.decisions()) == ["a.png"]
    assert reader.warnings == ("line 2 is unfinished (a writer stopped mid-line): ignored",)
    writer = Journal(tmp_path)
    assert writer.decide([Decision("b.png", 1, "drop")], "run2").refused == ()
    assert "was cut off" in writer.warnings[0]
    assert [r["path"] for r in records(tmp_path)] == ["a.png", "b.png"]
    assert set(reader.decisions()) == {"a.png", "b.png"}


def test_lines_that_are_not_records_are_ignored_and_reported(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.decide([Decision("a.png", 0)], "run")
    with open(tmp_path / JOURNAL_NAME, "ab") as f:
        f.write(b"garbage\n[1, 2]\n{}\n")
        f.write(b'{"v": 1, "kind": "decide", "path": "../x.png", "route": 0, "label": "", "caption": null,')
        f.write(b' "owner": "o", "time": 1}\n')
        f.write(b'{"v": 1, "kind": "decide", "path": "a.png", "route": 5, "label": "", "caption": null,')
        f.write(b' "owner": "rogue", "time": 1, "redo": false}\n')
    j.decide([Decision("b.png", 1)], "run")
    again = Journal(tmp_path)
    assert {p: d.route for p, d in again.decisions().items()} == {"a.png": 0, "b.png": 1}
    assert again.warnings == (
        "line 2 is not a journal record: ignored",
        "line 3 is not a journal record: ignored",
        "line 4 is not a journal record: ignored",
        "line 5 is not a journal record: ignored",
        "line 6: a.png decided a second time without redo: ignored",
    )


def test_a_symlink_planted_as_the_journal_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(b"precious\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / JOURNAL_NAME).symlink_to(target)
    j = Journal(data)
    with pytest.raises(JournalError, match="is a symbolic link: refused"):
        j.decide([Decision("a.png", 0)], "run")
    with pytest.raises(JournalError, match="is a symbolic link: refused"):
        j.decisions()
    assert target.read_bytes() == b"precious\n"


def test_a_hard_link_planted_as_the_journal_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(b"precious\n")
    data = tmp_path / "data"
    data.mkdir()
    os.link(target, data / JOURNAL_NAME)
    with pytest.raises(JournalError, match="hard link"):
        Journal(data).decide([Decision("a.png", 0)], "run")
    assert target.read_bytes() == b"precious\n"


def test_a_fifo_planted_as_the_journal_is_refused_without_hanging(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / JOURNAL_NAME)
    with pytest.raises(JournalError, match="not a plain file"):
        Journal(tmp_path).decisions()


def test_no_journal_yet_reads_as_nothing_decided_and_writes_nothing(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    assert j.decisions() == {} and j.held_by_others("x") == set() and j.progress(["a.png"]).decided == 0
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_dataset_folder_is_a_clear_error_to_write(tmp_path: Path) -> None:
    if os.name == "nt" or os.geteuid() == 0:
        pytest.skip("permissions do not stop this user")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(JournalError, match="cannot be written"):
            Journal(tmp_path).decide([Decision("a.png", 0)], "run")
    finally:
        tmp_path.chmod(0o755)


@pytest.fixture(scope="module")
def ctx() -> Any:
    """Children forked from a server that imported the journal already (a fresh Python spends
    seconds importing torch through the gates package); see tests/test_reliability.py."""
    if os.name != "posix":
        pytest.skip("needs fork and SIGKILL")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["gates.dataset.journal", __name__])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
        multiprocessing.forkserver.ensure_running()
    return context


MID_LINE = "stopped mid-line"


def decider(root: str, owner: str, count: int, caption_bytes: int, acks: Connection, stall_after: int = -1) -> None:
    """Child: decide every undecided file one by one, sending each path once its call returned.

    With `stall_after` N >= 0, the (N+1)th decision writes half its line, says MID_LINE and
    waits to be killed: a writer killed inside a line, which one write of a whole line rarely
    gives a kill the chance to be (a full disk or a signal can).
    """
    if stall_after >= 0:
        from gates.dataset import journal

        whole = journal._write_all

        def half_then_stall(fd: int, data: bytes) -> None:
            if stall_after > len(done_paths):
                whole(fd, data)
                return
            os.write(fd, data[: len(data) // 2])
            acks.send(MID_LINE)
            time.sleep(600)

        journal._write_all = half_then_stall  # type: ignore[attr-defined]
    j = Journal(root)
    decided = j.decisions()
    done_paths: list[str] = []
    for path in [f"img{i}.png" for i in range(count) if f"img{i}.png" not in decided]:
        caption = "x" * random.randint(0, caption_bytes)
        done = j.decide([Decision(path, len(path) % 3, "keep", caption)], owner)
        assert done.refused == (), done.refused
        done_paths.append(path)
        acks.send(path)


def test_kill_9_at_any_moment_loses_no_acknowledged_decision_and_decides_nothing_twice(
    tmp_path: Path, ctx: Any
) -> None:
    """A process deciding files one by one, with captions of up to 1 MiB, is killed with -9
    after a random number of acknowledged decisions, every other time inside the line it is
    writing; each restart finds every decision acknowledged so far, and goes on with the rest.
    At the end every file was decided exactly once and no torn line is left."""
    rng = random.Random(21)
    count = 60
    acked: set[str] = set()
    for round_ in range(10):
        receive, send = ctx.Pipe(duplex=False)
        wait_for = rng.randint(1, 5)
        stall_after = wait_for if round_ % 2 else -1
        child = ctx.Process(target=decider, args=(str(tmp_path), f"run-{round_}", count, 1 << 20, send, stall_after))
        child.start()
        send.close()
        for _ in range(wait_for + (stall_after >= 0)):  # its acks (and MID_LINE, when it stalls)
            try:
                if not receive.poll(60):
                    break
                acked.add(receive.recv())
            except EOFError:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        while receive.poll():  # what it acknowledged before the kill landed
            try:
                acked.add(receive.recv())
            except EOFError:
                break
        acked.discard(MID_LINE)
        reader = Journal(tmp_path)
        assert acked <= set(reader.decisions())
        if stall_after >= 0:
            assert reader.warnings[-1].endswith("is unfinished (a writer stopped mid-line): ignored")
    receive, send = ctx.Pipe(duplex=False)
    last = ctx.Process(target=decider, args=(str(tmp_path), "run-last", count, 100, send))
    last.start()
    last.join(120)
    assert last.exitcode == 0
    decided = Journal(tmp_path).decisions()
    assert set(decided) == {f"img{i}.png" for i in range(count)}
    paths = [r["path"] for r in records(tmp_path)]
    assert sorted(paths) == sorted(decided)  # one decision line per file, no torn line left


def worker(root: str, owner: str, count: int, out: Connection) -> None:
    """Child: a tab that takes a page of undecided files, claims and decides them, until none is left."""
    files = [f"img{i}.png" for i in range(count)]
    j = Journal(root)
    rng = random.Random(owner)
    written = 0
    while True:
        decided, held = j.decisions(), j.held_by_others(owner)
        page = [f for f in files if f not in decided and f not in held][:4]
        if not page:
            break
        claimed = j.claim(page, owner)
        stray = [
            Decision(f"img{rng.randrange(count)}.png", 1, "drop")
        ]  # a careless tab decides a file it never claimed
        written += len(j.decide([Decision(p, 0, "keep") for p in claimed] + stray, owner).written)
    out.send(written)


def test_concurrent_processes_never_decide_a_file_twice(tmp_path: Path, ctx: Any) -> None:
    count = 80
    totals = run_three(ctx, worker, tmp_path, "tab", count)
    paths = [r["path"] for r in records(tmp_path) if r["kind"] == "decide"]
    assert sorted(paths) == sorted(f"img{i}.png" for i in range(count))  # each exactly once
    assert sum(totals) == count


def run_three(ctx: Any, target: Any, root: Path, owner: str, count: int) -> list[int]:
    """Three children running `target(root, owner-N, count, pipe)` at once; what each sent back."""
    pipes = [ctx.Pipe(duplex=False) for _ in range(3)]
    children = [
        ctx.Process(target=target, args=(str(root), f"{owner}-{n}", count, send)) for n, (_, send) in enumerate(pipes)
    ]
    for child in children:
        child.start()
    totals = [receive.recv() if receive.poll(120) else -1 for receive, _ in pipes]
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    return totals


def racer(root: str, owner: str, count: int, out: Connection) -> None:
    """Child: a re-run that tries to decide every file in order, with no claim at all."""
    j = Journal(root)
    out.send(sum(len(j.decide([Decision(f"img{i}.png", 0)], owner).written) for i in range(count)))


def test_racing_writers_without_claims_still_decide_each_file_once(tmp_path: Path, ctx: Any) -> None:
    """Three processes decide the same files in the same order at the same time: only the lock
    between re-reading the journal and appending to it keeps two of them from both writing."""
    count = 300
    totals = run_three(ctx, racer, tmp_path, "rerun", count)
    paths = [r["path"] for r in records(tmp_path)]
    assert sorted(paths) == sorted(f"img{i}.png" for i in range(count)) and sum(totals) == count


def test_a_live_owners_claim_holds_past_its_time_and_a_crafted_one_lapses_within_a_day(tmp_path: Path) -> None:
    clock = Clock()
    live = Journal(tmp_path, clock=clock, alive=lambda owner: True if owner == "paused-here" else None)
    live.claim(["a.png"], "paused-here", ttl_s=60)
    clock.now += 3600  # a person takes an hour over the page
    assert live.held_by_others("another") == {"a.png"}
    record = {"v": 1, "kind": "claim", "owner": "elsewhere", "paths": ["b.png"], "until": 1e300, "time": clock.now}
    with open(tmp_path / JOURNAL_NAME, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    assert live.held_by_others("another") == {"a.png", "b.png"}
    clock.now += 24 * 3600 + 1
    assert live.held_by_others("another") == {"a.png"}
    with pytest.raises(DatasetError, match="time to live"):
        live.claim(["c.png"], "x", ttl_s=1e9)


def test_a_page_is_journaled_whole_or_not_at_all_and_a_review_keeps_an_edited_caption(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.decide([Decision("a.png", 0, "keep", "edited at the gate")], "run-1")
    done = j.decide([Decision("b.png", 0), Decision("a.png", 1)], "run-2", all_or_nothing=True)
    assert done.written == () and done.refused == (("a.png", "decided already"),)
    assert set(j.decisions()) == {"a.png"}
    j.decide([Decision("a.png", 2, "drop")], "run-3", redo=True)  # a review without editing the caption
    assert j.decisions()["a.png"].caption == "edited at the gate" and j.decisions()["a.png"].label == "drop"


def test_a_full_disk_mid_write_keeps_nothing_of_the_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(tmp_path)
    j.decide([Decision("a.png", 0)], "run-1")
    before = (tmp_path / JOURNAL_NAME).read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        if len(data) > 40:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(JournalError, match=r"No space left on device.*nothing of this call was kept"):
        j.decide([Decision(f"{i}.png", 0, "keep", "x" * 30) for i in range(4)], "run-2")
    monkeypatch.undo()
    assert (tmp_path / JOURNAL_NAME).read_bytes() == before
    assert set(Journal(tmp_path).decisions()) == {"a.png"}
