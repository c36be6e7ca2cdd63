"""Reliability of the slot store under crashes and load.

* kill -9 of a publisher at random moments, 200 times: every slot still loads one whole
  version, bit-exact, and the next publish sweeps the dead writer's temp files;
* a soak of threads and processes publishing and loading the same and different slots.

Children come from a "forkserver" that has already imported torch and the store, so each one
starts in milliseconds instead of the second a fresh interpreter needs, and none inherits the
test process's torch threads (forking a process that has run torch ops is unsafe).
"""

from __future__ import annotations

import io
import multiprocessing
import multiprocessing.forkserver
import os
import random
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from policy_files import write_policy
from test_slots import assert_exact

from gates import images
from gates.bus.errors import SlotNotFound
from gates.bus.local.store import SlotStore
from gates.bus.policy import Policy

KILLS = 200  # values stay below 256, so every version is exact in bfloat16 too
SOAK_S = float(os.environ.get("DATASET_GATES_SOAK_S", "30"))
HISTORY_KEEP = 3

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs fork and SIGKILL")


@pytest.fixture(scope="module")
def ctx() -> Any:
    """The multiprocessing context every child here comes from (see the module docstring).

    Python before 3.13 starts the forkserver without the parent's sys.path, so preloading
    this module (where the children's code lives) would fail silently and every child would
    import pytest itself (~130 ms); PYTHONPATH hands the path over while it starts.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "gates.bus.local.store", __name__])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
        multiprocessing.forkserver.ensure_running()
    return context


def temp_files(folder: Path) -> list[Path]:
    """atomic_write's temp files (`.<name>.<pid>.<hex>.tmp`) anywhere under `folder`."""
    return sorted(folder.rglob("*.tmp"))


@dataclass(frozen=True)
class SlotSpec:
    """One slot of the crash test. Version `v` is image and mask filled with `v`, so a load
    tells which version it got and whether image and mask belong together."""

    root: str
    id: str
    dtype: torch.dtype
    shape: tuple[int, int, int, int]

    def store(self) -> SlotStore:
        return SlotStore(self.root)

    def tensors(self, value: float) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.full(self.shape, value, dtype=self.dtype), torch.full(self.shape[:3], value, dtype=self.dtype))

    def publish(self, value: float) -> None:
        self.store().publish(self.id, *self.tensors(value), meta={"value": value})

    def check(self, ref: str, allowed: set[float]) -> float:
        """Load `ref` with the checksum on; it must be exactly one allowed version."""
        image, mask = self.store().load(ref, verify=True)
        value = mask.reshape(-1)[0].item()
        assert value in allowed, f"{self.id}: loaded version {value}, expected one of {allowed}"
        expected_image, expected_mask = self.tensors(value)
        assert_exact(image, expected_image)
        assert_exact(mask, expected_mask)
        return value


def publisher(specs: list[SlotSpec], value: float, signals: Connection) -> None:
    """Child: build the tensors, say "ready", publish `value` to every slot, say "done".

    Building them and a thumbnail first (a fresh child's first PIL encode costs ~10 ms of
    plugin loading) means the kill delay, counted from "ready", spans only the publishes.
    """
    tensors = [spec.tensors(value) for spec in specs]
    images.png_bytes(images.thumbnail(tensors[0][0]))
    signals.send("ready")
    for spec, (image, mask) in zip(specs, tensors):
        spec.store().publish(spec.id, image, mask, meta={"value": value})
    signals.send("done")


def start_publisher(ctx: Any, specs: list[SlotSpec], value: float) -> tuple[Any, Connection]:
    """Start a child and return it once it is about to write."""
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=publisher, args=(specs, value, send), daemon=True)
    proc.start()
    send.close()
    assert receive.poll(60) and receive.recv() == "ready", "publisher child did not start"
    return proc, receive


def measure_publish(ctx: Any, specs: list[SlotSpec], runs: int = 7) -> float:
    """Median seconds from a child's "ready" to its "done", on scratch copies of the slots."""
    scratch = [replace(spec, root=spec.root + "-calibration") for spec in specs]
    durations = []
    for run in range(runs):
        proc, signals = start_publisher(ctx, scratch, float(run))
        start = time.perf_counter()
        assert signals.poll(60) and signals.recv() == "done"
        durations.append(time.perf_counter() - start)
        proc.join(30)
    return statistics.median(durations)


@pytest.fixture
def crash_specs(tmp_path: Path) -> list[SlotSpec]:
    """A float32 and a bfloat16 slot on a keep=1 bus, and a keep=3 slot on its own bus
    (the storage policy belongs to a bus folder, not to a slot)."""
    plain, kept = tmp_path / "bus", tmp_path / "kept_bus"
    write_policy(kept, Policy(keep=HISTORY_KEEP))
    return [
        SlotSpec(str(plain), "f32", torch.float32, (2, 128, 128, 3)),
        SlotSpec(str(plain), "bf16", torch.bfloat16, (2, 128, 128, 4)),
        SlotSpec(str(kept), "hist", torch.float32, (1, 96, 96, 3)),
    ]


def test_kill_9_at_random_moments_leaves_whole_versions(
    ctx: Any, crash_specs: list[SlotSpec], record_property: Any
) -> None:
    """Child k publishes version k+1 to every slot and is killed after a random delay in
    0..1.2x a publish; the parent then checks every slot and republishes as -(k+1)."""
    specs = crash_specs
    hist = specs[-1]  # the keep=3 slot
    publish_s = measure_publish(ctx, specs)
    roots = sorted({Path(s.root) for s in specs})
    current = {spec: 0.0 for spec in specs}
    for spec in specs:
        spec.publish(0.0)
    committed = {spec: [0.0] for spec in specs}  # every version each slot has held, in order

    rng = random.Random(20240611)
    mid_write = finished_first = 0
    for k in range(KILLS):
        new = float(k + 1)
        proc, signals = start_publisher(ctx, specs, new)
        time.sleep(rng.uniform(0.0, 1.2 * publish_s))
        proc.kill()  # SIGKILL; a no-op if the child has already finished and been reaped
        proc.join(30)
        assert proc.exitcode in (-signal.SIGKILL, 0)  # 0: it finished before the signal
        finished_first += int(signals.poll() and proc.exitcode == 0)
        signals.close()

        left = [p for root in roots for p in temp_files(root)]
        mid_write += bool(left)
        for root in roots:
            expected = sorted(s.id for s in specs if Path(s.root) == root)
            store = SlotStore(root)
            assert store.ids() == expected
            assert sorted(s.id for s in store.list() if not s.error) == expected
        for spec in specs:
            value = spec.check(spec.id, {current[spec], new})
            if value != current[spec]:
                committed[spec].append(value)
                current[spec] = value

        # The next publish sweeps the dead child's temp files: publish into every folder that
        # has some, and always into the history slot so its pruning is settled for the check.
        dirty = {p.parent.parent if p.parent.name == "history" else p.parent for p in left}
        for spec in specs:
            folder = spec.store().slot_dir(spec.id)
            if folder in dirty or spec is hist:
                spec.publish(-new)
                committed[spec].append(-new)
                current[spec] = -new
                assert not temp_files(folder), f"temp files survived a publish in {folder}"
        assert not [p for root in roots for p in temp_files(root)]

        kept = [hist.check(v.ref, set(committed[hist])) for v in hist.store().history(hist.id)]
        assert kept == committed[hist][::-1][:HISTORY_KEEP], "history lost or reordered a version"

    print(
        f"\ncrash test: {KILLS} kills, {mid_write} mid-write (temp file on disk after the kill), "
        f"{finished_first} after the child had finished; publish of {len(specs)} slots takes "
        f"{publish_s * 1000:.1f} ms; versions lost: 0"
    )
    record_property("kills", KILLS)
    record_property("kills_mid_write", mid_write)
    record_property("kills_after_finish", finished_first)
    assert mid_write > 0, "no kill landed mid-write: the test proved nothing"


# -- delete and rename losing a race -------------------------------------------------------------


@pytest.fixture
def vanishing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlotStore:
    """A store whose slots are moved away by "another process" right after exists() finds them:
    the window in which two deletes, or a delete and a rename, race for one folder."""
    store = SlotStore(tmp_path / "bus")
    for slot in ("x", "y"):
        store.publish(slot, torch.zeros(1, 4, 4, 3))
    real_exists = SlotStore.exists

    def exists_then_vanish(self: SlotStore, slot_id: str) -> bool:
        found = real_exists(self, slot_id)
        if found:
            os.rename(self.slot_dir(slot_id), tmp_path / f"taken-{slot_id}")
        return found

    monkeypatch.setattr(SlotStore, "exists", exists_then_vanish)
    return store


def test_delete_that_loses_a_race_is_slot_not_found(vanishing_store: SlotStore) -> None:
    """Not a bare FileNotFoundError, which the HTTP DELETE route would turn into a 500."""
    with pytest.raises(SlotNotFound, match="'x'"):
        vanishing_store.delete("x")


def test_rename_that_loses_a_race_is_slot_not_found(vanishing_store: SlotStore) -> None:
    with pytest.raises(SlotNotFound, match="'y'"):
        vanishing_store.rename("y", "z")
    assert not (vanishing_store.root / "z").exists()


# -- thumbnail and tensors of one version --------------------------------------------------------


def test_publish_between_anothers_two_renames_keeps_thumbnail_and_tensors_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer A (black) has replaced the tensors and is about to replace the thumbnail when
    writer B (white) publishes the same slot: B must wait for A, so the slot never ends up
    white with a black thumbnail (two ComfyUI instances sharing a bus do this)."""
    store = SlotStore(tmp_path / "bus")
    real_replace = os.replace
    a_paused, b_done = threading.Event(), threading.Event()
    a_thread = threading.current_thread()

    def replace(src: Any, dst: Any) -> None:
        if str(dst).endswith("thumb.png") and threading.current_thread() is a_thread and not a_paused.is_set():
            a_paused.set()
            b_done.wait(timeout=1.0)  # without the lock, B finishes here
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)

    def writer_b() -> None:
        a_paused.wait(timeout=10)
        store.publish("x", torch.ones(1, 32, 32, 3))
        b_done.set()

    b = threading.Thread(target=writer_b)
    b.start()
    store.publish("x", torch.zeros(1, 32, 32, 3))
    b.join(timeout=30)
    monkeypatch.undo()
    assert b_done.is_set()
    value = store.load("x")[0].reshape(-1)[0].item()
    thumb = np.asarray(Image.open(io.BytesIO(store.thumbnail("x"))).convert("L"))
    assert value == 1.0, "B published last"
    assert (thumb > 127).all() == (value > 0.5), "thumbnail shows the other version"


# -- soak: threads and processes on the same and different slots ---------------------------------

SHARED = {"shared-f32": torch.float32, "shared-bf16": torch.bfloat16}
SOAK_SHAPE = (2, 48, 40, 3)
SOAK_THREADS, SOAK_PROCESSES = 8, 2
CHURN = ("churn-a", "churn-b")  # published, renamed and deleted by the churn threads


@dataclass
class Tally:
    """What one worker did; `errors` holds only the exceptions the store does not document."""

    publishes: int = 0
    loads: int = 0
    lookups: int = 0  # info, list, history, read_image
    renames: int = 0
    deletes: int = 0
    not_found: int = 0  # SlotNotFound where a delete, rename or prune may have won the race
    mixed: int = 0
    errors: list[str] | None = None

    def add(self, other: Tally) -> None:
        for name in ("publishes", "loads", "lookups", "renames", "deletes", "not_found", "mixed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors = (self.errors or []) + (other.errors or [])


def soak_tensors(dtype: torch.dtype, value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A version: image (in the slot's dtype) and float32 mask filled with one value.
    The float32 mask names the version exactly even where bfloat16 rounds the image."""
    return torch.full(SOAK_SHAPE, value, dtype=dtype), torch.full(SOAK_SHAPE[:3], value)


def is_one_version(image: torch.Tensor, mask: torch.Tensor) -> bool:
    """Whether image and mask are the same single version (see soak_tensors)."""
    value = mask.reshape(-1)[0].item()
    return torch.equal(mask, torch.full_like(mask, value)) and torch.equal(
        image, torch.full(image.shape, value, dtype=image.dtype)
    )


def soak_op(tally: Tally, racy: bool, op: Any, *args: Any) -> Any:
    """Run one store call; SlotNotFound counts as expected only where `racy`."""
    try:
        return op(*args)
    except SlotNotFound as exc:
        if racy:
            tally.not_found += 1
            return None
        tally.errors.append(f"{op.__name__}{args[:1]}: {exc!r}")
    except Exception as exc:
        tally.errors.append(f"{op.__name__}{args[:1]}: {exc!r}")
    return None


def soak_worker(root: str, index: int, seconds: float, workers: int) -> Tally:
    """Publish to the shared slots and this worker's own, load everyone's, list and look up."""
    store, rng, tally = SlotStore(root), random.Random(index), Tally(errors=[])
    own = f"own-{index}"
    readable = [*SHARED, *(f"own-{i}" for i in range(workers)), *CHURN, *(f"{s}@-1" for s in SHARED)]
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        value = float(index * 65536 + n % 65536)  # exact in float32: no two writers share one
        roll = rng.random()
        if roll < 0.3:
            slot = rng.choice([*SHARED, own])
            soak_op(tally, False, store.publish, slot, *soak_tensors(SHARED.get(slot, torch.float32), value))
            tally.publishes += 1
        elif roll < 0.85:
            ref = rng.choice(readable)
            loaded = soak_op(tally, ref in CHURN or "@" in ref, store.load, ref)
            tally.loads += 1
            if loaded is not None and not is_one_version(*loaded):
                tally.mixed += 1
        else:
            slot = rng.choice([*SHARED, own])
            which = rng.randrange(3)
            if which == 0:
                soak_op(tally, False, store.list)
            elif which == 1:
                soak_op(tally, True, store.history, slot)  # an older version may be pruned meanwhile
            else:
                png = soak_op(tally, False, store.render, slot, 1)  # one image, read band by band
                if png is not None and np.unique(np.asarray(Image.open(io.BytesIO(png)))).size != 1:
                    tally.mixed += 1
            tally.lookups += 1
    return tally


def soak_process(root: str, index: int, seconds: float, workers: int, result: Connection) -> None:
    """Child: run soak_worker and send its tally back."""
    result.send(soak_worker(root, index, seconds, workers))


def churn_writer(root: str, seconds: float) -> Tally:
    """Publish churn-a and rename it onto churn-b (replacing it), while churn_reaper deletes
    churn-b: rename-with-overwrite and delete race for the same folder."""
    store, tally = SlotStore(root), Tally(errors=[])
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        n += 1
        soak_op(tally, False, store.publish, CHURN[0], *soak_tensors(torch.float32, 1e6 + n))
        tally.publishes += 1
        soak_op(tally, True, store.rename, CHURN[0], CHURN[1], True)
        tally.renames += 1
    return tally


def churn_reaper(root: str, seconds: float) -> Tally:
    store, tally = SlotStore(root), Tally(errors=[])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if store.exists(CHURN[1]):  # count deletes that had something to delete
            soak_op(tally, True, store.delete, CHURN[1])
            tally.deletes += 1
    return tally


def test_soak_threads_and_processes_never_mix_versions(ctx: Any, tmp_path: Path, record_property: Any) -> None:
    """DATASET_GATES_SOAK_S seconds (30 by default) of 8 threads and 2 processes publishing and
    loading the same and different slots, with history on and a churn of renames and deletes."""
    root = tmp_path / "bus"
    write_policy(root, Policy(keep=2))
    store = SlotStore(root)
    workers = SOAK_THREADS + SOAK_PROCESSES
    for slot, dtype in SHARED.items():
        store.publish(slot, *soak_tensors(dtype, -1.0))
    for i in range(workers):
        store.publish(f"own-{i}", *soak_tensors(torch.float32, -1.0))

    tallies: list[Tally] = []
    procs = []
    for i in range(SOAK_THREADS, workers):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=soak_process, args=(str(root), i, SOAK_S, workers, send), daemon=True)
        proc.start()
        send.close()
        procs.append((proc, receive))
    jobs = [(soak_worker, (str(root), i, SOAK_S, workers)) for i in range(SOAK_THREADS)]
    jobs += [(churn_writer, (str(root), SOAK_S)), (churn_reaper, (str(root), SOAK_S))]
    lock = threading.Lock()

    def run(job: Any, args: tuple) -> None:
        try:
            tally = job(*args)
        except BaseException as exc:
            tally = Tally(errors=[f"{job.__name__} crashed: {exc!r}"])
        with lock:
            tallies.append(tally)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SOAK_S + 120)
    for proc, receive in procs:
        assert receive.poll(SOAK_S + 120), "a soak process sent no result"
        tallies.append(receive.recv())
        proc.join(30)
        assert proc.exitcode == 0

    total = Tally(errors=[])
    for tally in tallies:
        total.add(tally)
    ops = total.publishes + total.loads + total.lookups + total.renames + total.deletes
    summary = (
        f"soak {SOAK_S:g}s, {SOAK_THREADS} threads + {SOAK_PROCESSES} processes + 2 churn "
        f"threads: {ops} ops = {total.publishes} publishes, {total.loads} loads, "
        f"{total.lookups} lookups, {total.renames} renames, {total.deletes} deletes; "
        f"{total.not_found} SlotNotFound (expected races), {total.mixed} mixed reads, "
        f"{len(total.errors)} other errors"
    )
    print("\n" + summary)
    for name in ("publishes", "loads", "lookups", "renames", "deletes", "not_found", "mixed"):
        record_property(f"soak_{name}", getattr(total, name))
    record_property("soak_errors", len(total.errors))

    assert len(tallies) == len(jobs) + len(procs)
    assert not total.errors, f"{len(total.errors)} undocumented errors, first: {total.errors[:5]}"
    assert total.mixed == 0
    assert total.publishes > 0 and total.loads > 0
    expected = sorted([*SHARED, *(f"own-{i}" for i in range(workers))])
    assert [s for s in store.ids() if s not in CHURN] == expected
    for slot in expected:
        assert is_one_version(*store.load(slot))
    assert not temp_files(root)
    assert not [p for p in root.iterdir() if p.name.startswith(".trash")]
