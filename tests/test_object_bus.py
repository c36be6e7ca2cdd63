"""What only the object-store bus has to prove (the rest is the shared contract, in
tests/test_bus_contract.py): secrets kept out of every message, network faults retried and
reported, no half-written publish ever visible (kill -9 included), many processes publishing
one set of slots at once, the listing index and its token, and `gates gc`.

Everything runs against moto's S3 server on loopback (tests/moto_s3.py), over HTTP.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from moto_s3 import ACCESS_KEY, SECRET_KEY, S3Server
from s3_worker import image_for

from gates import cli
from gates.bus import SlotNotFound, SlotUnavailable, SlotWriteError, open_bus

pytest.importorskip("obstore")
from gates.bus.object import ObjectBus, collect_garbage
from gates.bus.object.config import parse_location, settings_for

WORKER = Path(__file__).with_name("s3_worker.py")


def _bus(location: str) -> ObjectBus:
    bus = open_bus(location)
    assert isinstance(bus, ObjectBus)
    return bus


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.uint8), b.view(torch.uint8))


# -- locations and secrets --------------------------------------------------------------------
@pytest.mark.parametrize(
    "location, why",
    [
        ("s3://AKIA:secret@bucket/x", "credentials never go in a bus location"),
        ("s3://Bad_Bucket/x", "not a bucket name"),
        ("s3://bucket/a/../b", "not a safe prefix part"),
        ("s3://bucket/x?versionId=1", "no '?'"),
    ],
)
def test_a_bad_location_is_refused_naming_the_rule(location: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        parse_location(location)
    assert "secret" not in str(caught.value).replace("AWS_SECRET_ACCESS_KEY", "")


@pytest.mark.parametrize("endpoint", ["http://[::1", "ht!tp://bad host", "http://x:abc", "minio.lan:9000"])
def test_a_malformed_endpoint_is_refused_naming_the_setting(endpoint: str) -> None:
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL is not an http") as caught:
        settings_for("s3://bucket/p", {"AWS_ENDPOINT_URL": endpoint})
    assert endpoint not in str(caught.value)


def test_a_location_is_what_a_person_types_again() -> None:
    assert parse_location("s3://my-bucket/team/bus/") == ("my-bucket", "team/bus")
    settings = settings_for("s3://my-bucket/team/bus", {"AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    assert settings.location == "s3://my-bucket/team/bus" and settings.label == "bus"
    assert SECRET_KEY not in repr(settings)


def test_settings_come_from_the_aws_files_when_the_environment_has_none(tmp_path: Path) -> None:
    (tmp_path / "credentials").write_text("[work]\naws_access_key_id = AKFILE\naws_secret_access_key = SKFILE\n")
    (tmp_path / "config").write_text("[profile work]\nregion = eu-west-3\nendpoint_url = http://minio.lan:9000\n")
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_PROFILE": "work",
    }
    s = settings_for("s3://bkt/x", env)
    assert (s.access_key_id, s.secret_access_key, s.region, s.endpoint) == (
        "AKFILE",
        "SKFILE",
        "eu-west-3",
        "http://minio.lan:9000",
    )
    assert settings_for("s3://bkt/x", {**env, "AWS_REGION": "us-west-2"}).region == "us-west-2"  # env wins


def test_without_obstore_the_error_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "obstore", None)
    with pytest.raises(ValueError, match=r'pip install "dataset-gates\[s3\]"'):
        open_bus("s3://bucket/x")


def test_no_secret_in_errors_repr_meta_or_logs(
    s3_server: S3Server, s3_location: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bus = _bus(s3_location)
    info = bus.publish("x", image_for(0, 0))
    texts = [repr(bus), bus.name, bus.location, bus.where("x"), repr(info.to_dict()), repr(bus.client)]
    missing = _bus(f"s3://no-such-bucket-{os.getpid()}/bus")
    for call in (lambda: missing.publish("x", image_for(0, 1)), lambda: missing.read("x"), missing.list):
        with pytest.raises((SlotWriteError, SlotUnavailable)) as caught:
            call()
        assert "does not exist" in str(caught.value)
        texts.append(str(caught.value))
    s3_server.faults.add("503", 100)
    with pytest.raises(SlotWriteError) as failed:
        bus.publish("x", image_for(0, 2))
    texts.append(str(failed.value))
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert SECRET_KEY not in text and ACCESS_KEY not in text, text


# -- faults ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["503", "reset"])
def test_a_passing_fault_is_retried(s3_server: S3Server, s3_location: str, kind: str) -> None:
    bus = _bus(s3_location)
    s3_server.faults.add(kind, 2, "PUT")
    bus.publish("x", image_for(0, 1))
    s3_server.faults.add(kind, 2, "GET")
    assert _same(bus.read("x").image, image_for(0, 1))
    assert s3_server.faults.hits == 4


def test_a_slow_answer_is_retried(s3_server: S3Server, s3_location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASET_GATES_S3_TIMEOUT", "1")
    bus = _bus(s3_location)
    bus.publish("x", image_for(0, 1))
    s3_server.faults.add("slow", 1, "GET", seconds=2.5)
    assert _same(bus.read("x").image, image_for(0, 1))


def test_a_fault_that_persists_is_reported_and_nothing_half_written_shows(
    s3_server: S3Server, s3_location: str
) -> None:
    bus = _bus(s3_location)
    bus.set_policy(keep=2)
    bus.publish("x", image_for(0, 1), meta={"n": 1})
    before = (bus.list(), bus.history("x"), bus.fingerprint("x"))
    for methods in ("PUT", "GET"):  # the version's PUT fails; or the manifest read after it
        s3_server.faults.add("503", 1000, methods)
        started = time.monotonic()
        with pytest.raises((SlotWriteError, SlotUnavailable)) as caught:
            bus.publish("x", image_for(0, 2), meta={"n": 2})
        s3_server.faults.clear()
        message = str(caught.value)
        assert "HTTP 503" in message and "tries" in message and s3_location in message, message
        assert time.monotonic() - started < 30
        assert (bus.list(), bus.history("x"), bus.fingerprint("x")) == before
        assert _same(bus.read("x").image, image_for(0, 1))


def test_a_rename_cut_short_leaves_the_slot_under_both_names_never_under_none(
    s3_server: S3Server, s3_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASET_GATES_S3_RETRIES", "0")
    bus = _bus(s3_location)
    bus.publish("a", image_for(0, 1))
    swap = ObjectBus._swap

    def then_down(self: ObjectBus, *args: object, **kwargs: object) -> object:
        done = swap(self, *args, **kwargs)  # the target names the versions ...
        s3_server.faults.add("503", 1000, "PUT")  # ... and the store goes down
        return done

    monkeypatch.setattr(ObjectBus, "_swap", then_down)
    with pytest.raises((SlotWriteError, SlotUnavailable)):
        bus.rename("a", "b")
    monkeypatch.setattr(ObjectBus, "_swap", swap)
    s3_server.faults.clear()
    fresh = _bus(s3_location)
    assert fresh.exists("a") and fresh.exists("b")
    collect_garbage(fresh, grace=0)
    assert _same(fresh.read("a").image, image_for(0, 1)) and _same(fresh.read("b").image, image_for(0, 1))
    fresh.rename("a", "b", overwrite=True)  # done again: one name, nothing lost
    assert not fresh.exists("a") and _same(fresh.read("b").image, image_for(0, 1))


def test_a_store_that_is_down_is_slot_unavailable(s3_location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nobody listens
    monkeypatch.setenv("DATASET_GATES_S3_RETRIES", "1")
    with pytest.raises(SlotUnavailable, match=r"connection refused|could not be sent"):
        open_bus(s3_location).list()


def test_writers_killed_mid_publish_leave_the_previous_version_whole(s3_location: str) -> None:
    """kill -9 at random moments of a stream of 256x256 publishes: the slot always reads back
    exactly one whole publish, no later than the one in flight; gc then collects the rest."""
    bus = _bus(s3_location)
    bus.set_policy(keep=2)
    first, last_read = 0, -1
    rng = random.Random(7)
    for _ in range(5):
        child = subprocess.Popen(
            [sys.executable, str(WORKER), "forever", s3_location, "k", str(first), "256"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        started = int(child.stdout.readline())
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        said = [started] + [int(line) for line in child.stdout.read().split()]
        child.wait()
        if not bus.exists("k"):
            continue  # killed before its first publish landed
        data = bus.read("k")
        n = data.meta["n"]  # this child's publish, or the one read after the last kill
        assert last_read <= n <= said[-1] and _same(data.image, image_for(0, n, 256))
        for older in bus.history("k")[1:]:
            m = older.meta["n"]
            assert m < n and _same(bus.read(older.ref).image, image_for(0, m, 256))
        first, last_read = said[-1] + 1, n
    report = collect_garbage(bus, grace=0)
    names = {v.name for v in bus._manifest("k")[0].versions}
    left = {p["path"].split("/")[1].rsplit(".", 1)[0] for p in bus.client.listing("versions/", "test")}
    assert left == names and report.objects_removed >= 0
    rows, _ = bus.index.read()  # a writer killed between its swap and the index: repaired
    assert rows["k"].seq == bus._manifest("k")[0].seq and rows["k"].info == bus.info("k")


# -- many processes at once -----------------------------------------------------------------------
def test_four_processes_publishing_twenty_slots_lose_nothing_and_mix_nothing(s3_location: str) -> None:
    """4 processes x 250 publishes over 20 shared slots, keep=3, while a lister and a reader run."""
    writers, count, slots = 4, 250, 20
    bus = _bus(s3_location)
    bus.set_policy(keep=3)
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        reads = 0
        while not stop.is_set():
            slot = f"s{random.randrange(slots):02d}"
            try:
                data = bus.read(slot)
            except SlotNotFound:
                continue
            reads += 1
            if not _same(data.image, image_for(data.meta["writer"], data.meta["n"])):
                errors.append(f"mixed read of {slot}: {data.meta}")
        if not reads:
            errors.append("the reader read nothing")

    def lister() -> None:
        while not stop.is_set():
            for row in bus.list():
                if row.error:
                    errors.append(f"damaged row {row.id}: {row.error}")
            for slot in random.sample(range(slots), 2):
                try:
                    kept = bus.history(f"s{slot:02d}")
                except SlotNotFound:
                    continue
                errors.extend(_order_errors(kept))

    threads = [threading.Thread(target=reader), threading.Thread(target=lister)]
    for t in threads:
        t.start()
    children = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "publish", s3_location, str(w), str(count), str(slots)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    outputs = [c.communicate(timeout=600) for c in children]
    stop.set()
    for t in threads:
        t.join()
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err[-2000:]
        assert len(out.split("\n")) - 1 == count
    assert errors == []
    published = {f"s{s:02d}": 0 for s in range(slots)}
    for w in range(writers):
        for n in range(count):
            published[f"s{(n * 7 + w) % slots:02d}"] += 1
    for slot, times in published.items():
        manifest = bus._manifest(slot)[0]
        assert manifest.seq == times, f"{slot}: {times} publishes, {manifest.seq} swaps"  # none lost
        kept = bus.history(slot)
        assert len(kept) == 3 and not _order_errors(kept)
    rows = {r.id: r for r in bus.list()}
    assert sorted(rows) == sorted(published) and all(r.versions == 3 for r in rows.values())


def _order_errors(kept: list) -> list[str]:
    """A writer's own versions must be newest-first in its own order."""
    last: dict[int, int] = {}
    out = []
    for v in kept:
        w, n = v.meta["writer"], v.meta["n"]
        if w in last and n >= last[w]:
            out.append(f"history of {v.id} has writer {w}'s #{n} before #{last[w]}")
        last[w] = n
    return out


# -- the listing index ---------------------------------------------------------------------------
def test_a_listing_is_one_request_and_its_token_changes_with_it(s3_server: S3Server, s3_location: str) -> None:
    bus = _bus(s3_location)
    assert bus.listing_token() == "empty" and bus.list() == []
    bus.publish("a", image_for(0, 1))
    token = bus.listing_token()
    assert token == bus.listing_token() != "empty"
    mark = len(s3_server.app.seen)
    assert [s.id for s in bus.list()] == ["a"]
    assert [s.id for s in open_bus(s3_location).list()] == ["a"]  # another bus, one process: a 304
    assert [m for m, _ in s3_server.requests_since(mark)] == ["GET", "GET"]
    bus.pin("a")
    assert bus.listing_token() != token and bus.list()[0].pinned
    token = bus.listing_token()
    bus.read("a")
    bus.history("a")
    assert bus.listing_token() == token  # reads change nothing


def test_a_worker_alone_on_its_bus_does_not_download_the_index_it_wrote(
    s3_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each change reads the index conditionally on the copy this process wrote: a 304, no
    parse; a change from elsewhere is read whole, and nothing of it is lost."""
    from gates.bus.object import index

    bus = _bus(s3_location)
    bus.publish("a", image_for(0, 1))
    parsed = []
    parse = index.parse
    monkeypatch.setattr(index, "parse", lambda data: parsed.append(len(data)) or parse(data))
    bus.publish("b", image_for(0, 2))
    bus.pin("a")
    assert parsed == []
    got = bus.client.get(index.KEY, index.MAX_INDEX_BYTES, "test")
    assert got is not None
    elsewhere = {**parse(got.data), "z": index.Row(7, 0, None)}  # another process's change
    bus.client.put(index.KEY, index.dump(elsewhere), "test", mode={"e_tag": got.etag})
    bus.publish("c", image_for(0, 3))
    assert len(parsed) == 1
    rows, _ = bus.index.read()
    assert sorted(rows) == ["a", "b", "c", "z"] and rows["z"].seq == 7 and bus.info("a").pinned


def test_gc_repairs_a_row_a_killed_writer_never_wrote(s3_location: str) -> None:
    bus = _bus(s3_location)
    bus.publish("a", image_for(0, 1))
    bus.publish("b", image_for(0, 2))
    bus.index.update(lambda rows: bool(rows.pop("b")), "test")  # as if killed before the index update
    assert [s.id for s in bus.list()] == ["a"]
    report = collect_garbage(bus, grace=0, dry_run=True)
    assert report.rows_repaired == 1 and [s.id for s in bus.list()] == ["a"]
    collect_garbage(bus, grace=0)
    assert sorted(s.id for s in bus.list()) == ["a", "b"]


# -- the command line ------------------------------------------------------------------------------
def test_the_cli_serves_an_s3_bus_and_collects_its_garbage(s3_location: str, capsys) -> None:
    assert cli.main(["--bus", s3_location, "ls"]) == 1
    assert "no bus at " + s3_location in capsys.readouterr().err
    bus = _bus(s3_location)
    bus.publish("a", image_for(0, 1))
    bus.client.put("versions/00000000000000000001-00000000deadbeef.safetensors", b"x" * 10, "test", mode="create")
    assert cli.main(["--bus", s3_location, "ls"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("a ")
    assert cli.main(["gc", "--bus", s3_location, "--dry-run"]) == 0
    assert "would remove 0 unnamed" in capsys.readouterr().out  # younger than the hour of grace
    with pytest.raises(SystemExit):
        cli.main(["gc", "--bus", s3_location, "--grace", "5"])
    assert "60 or more" in capsys.readouterr().err
    collect_garbage(bus, grace=0)
    assert not any("deadbeef" in p["path"] for p in bus.client.listing("versions/", "test"))


def test_gc_on_a_folder_bus_says_there_is_nothing_to_collect(tmp_path: Path, capsys) -> None:
    open_bus(tmp_path / "bus").publish("a", image_for(0, 1))
    assert cli.main(["--bus", str(tmp_path / "bus"), "gc"]) == 0
    assert "nothing to collect" in capsys.readouterr().out
