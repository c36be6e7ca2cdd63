"""Benchmark how soon a paused gate resumes after a click, and what a publish costs, without ComfyUI.

Run from the repository root:

    python benchmarks/bench_gate.py [--n 200] [--json OUT] [--strict]

* `POST /choice -> wake (event)`: a real HTTP POST over loopback to an aiohttp server running
  GateRoutes in its own thread, while a gate thread blocks in `Waiter.wait`; timed from just
  before the request is sent to the gate thread returning from the wait.
* `POST /choice -> wake (100 ms poll)`: the same, with the gate sleep-polling every 100 ms
  instead (the naive approach; its mean is ~50 ms because a click lands at a random point of the
  poll period, so each click is sent after a random delay of 0-100 ms).
* `Waiter.choose -> wake`: the answer given in-process, no HTTP: the floor of the above.
* `publish 1024x1024 f32 + thumbnail` and `thumbnail 1024x1024 alone`: `SlotStore.publish` of
  a [1,1024,1024,3] image with its mask (tensor file, thumbnail, fsyncs), and the thumbnail's
  share of it (downscale plus PNG encode).
* `pause preview 2048x2048, first look`: from arming a pause of a 2048x2048 float32 image to
  the last byte of its `GET /preview` over loopback, the request sent at once (the page is
  slower than that to ask, so this is the worst case): the render starts at the pause
  (downscale + PNG) and the request waits for it. `preview render 2048x2048 alone` is the
  render in-process, and `pause preview 2048x2048` a later request of the same pause (paging
  back, a reload), from the per-pause cache. The target applies to the first look.
* `/bus/list during 4 renders of 4096x4096`: `GET /bus/list` latency while four
  `GET /bus/image` previews of a 4096x4096 float32 slot render at once: whether the server
  (ComfyUI's own loop, inside ComfyUI) stays responsive.

Targets (median POST -> wake < 5 ms, pause preview 2048x2048 first look median < 20 ms, /bus/list p95
< 20 ms under the renders) are printed as PASS/FAIL; only --strict turns a FAIL into exit 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from aiohttp import web
from report import Row, Target, print_table, print_targets, write_json

from gates import images
from gates.bus.local.store import SlotStore
from gates.gate.waiter import Pending, Waiter
from gates.http.app import serving
from gates.http.routes import PREFIX, GateRoutes

WAKE_TARGET_MS = 5.0
PREVIEW_TARGET_MS = 20.0
LIST_UNDER_RENDER_P95_MS = 20.0
RENDERS = 4
POLL_S = 0.1
NODE = "bench:1"


@contextmanager
def gate_server(store: SlotStore, waiter: Waiter) -> Iterator[tuple[str, int]]:
    """GateRoutes on an ephemeral loopback port, served by an event loop in its own thread
    (as ComfyUI's aiohttp thread is separate from its prompt worker); yields (host, port)."""
    table = web.RouteTableDef()
    GateRoutes(store, waiter).add_to(table)
    app = web.Application()
    app.add_routes(table)
    with serving(app) as address:
        yield address


def event_wait(waiter: Waiter, pending: Pending) -> None:
    """What the gate does: block on the pending's event."""
    waiter.wait(pending, interrupted=lambda: False)


def poll_wait(waiter: Waiter, pending: Pending) -> None:
    """The naive gate: look for an answer every 100 ms."""
    while not pending._event.is_set():
        time.sleep(POLL_S)


def wake_latencies(
    waiter: Waiter, n: int, wait: Callable[[Waiter, Pending], None], answer: Callable[[Pending], None], spread_s: float
) -> list[float]:
    """`n` rounds of: arm a gate, block a thread in `wait`, then, after a random delay in
    [2 ms, 2 ms + spread_s] (so the thread is surely waiting), time `answer` -> thread awake."""
    image = torch.zeros(1, 8, 8, 3)
    rng = random.Random(0)
    samples = []
    for _ in range(n):
        pending = waiter.arm(NODE, image, routes=2)
        ready, woke = threading.Event(), [0.0]

        def gate(pending: Pending = pending, ready: threading.Event = ready, woke: list[float] = woke) -> None:
            ready.set()
            wait(waiter, pending)
            woke[0] = time.perf_counter()

        thread = threading.Thread(target=gate)
        thread.start()
        ready.wait()
        time.sleep(0.002 + rng.uniform(0.0, spread_s))
        start = time.perf_counter()
        answer(pending)
        thread.join(10)
        samples.append((woke[0] - start) * 1000.0)
    return samples


def http_answer(address: tuple[str, int]) -> Callable[[Pending], None]:
    """A choice POST on one kept-alive connection, as a browser tab would send it."""
    conn = http.client.HTTPConnection(*address, timeout=10)

    def answer(pending: Pending) -> None:
        body = json.dumps({"node": pending.node, "token": pending.token, "route": 1})
        conn.request("POST", f"{PREFIX}/choice", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"choice POST answered {resp.status}")

    return answer


def timed_ms(fn: Callable[[], Any], repeat: int) -> list[float]:
    """`fn` once untimed (warm-up: caches, first allocation), then `repeat` timed runs."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def get_ms(address: tuple[str, int], path: str) -> float:
    """One GET over a fresh loopback connection, timed to the last byte; it must answer 200."""
    conn = http.client.HTTPConnection(*address, timeout=60)
    try:
        start = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path} answered {resp.status}")
        return (time.perf_counter() - start) * 1000.0
    finally:
        conn.close()


def list_during_renders(store: SlotStore, address: tuple[str, int], rounds: int) -> list[float]:
    """/bus/list latencies while RENDERS previews of a 4096x4096 float32 slot render at once."""
    store.publish("big", torch.rand(1, 4096, 4096, 3, generator=torch.Generator().manual_seed(1)))
    for i in range(20):
        store.publish(f"small-{i}", torch.rand(1, 64, 64, 3))
    samples: list[float] = []
    for _ in range(rounds):
        renders = [threading.Thread(target=get_ms, args=(address, f"{PREFIX}/bus/image/big/0")) for _ in range(RENDERS)]
        for t in renders:
            t.start()
        time.sleep(0.02)  # let the renders start before listing
        while any(t.is_alive() for t in renders):
            samples.append(get_ms(address, f"{PREFIX}/bus/list"))
        for t in renders:
            t.join()
    return samples


def run(n: int, repeat: int, folder: Path) -> list[Row]:
    store, waiter = SlotStore(folder / "bus"), Waiter()
    rows = []
    with gate_server(store, waiter) as address:
        post = http_answer(address)
        rows.append(Row("POST /choice -> wake (event)", wake_latencies(waiter, n, event_wait, post, 0.003)))
        rows.append(Row("POST /choice -> wake (100 ms poll)", wake_latencies(waiter, n, poll_wait, post, POLL_S)))
        first, render = [], []
        for _ in range(repeat):  # a new pause each time: the first look renders
            image = torch.rand(1, 2048, 2048, 3)
            start = time.perf_counter()
            paused = waiter.arm(NODE, image, routes=2)  # the render starts here, at the pause
            get_ms(address, f"{PREFIX}/preview?node={NODE}&token={paused.token}&index=0")
            first.append((time.perf_counter() - start) * 1000.0)
            render.extend(timed_ms(lambda image=image: images.preview(image[0]), 1))
        rows.append(Row("pause preview 2048x2048, first look", first))
        rows.append(Row("preview render 2048x2048 alone", render))
        rows.append(
            Row(
                "pause preview 2048x2048",
                timed_ms(lambda: get_ms(address, f"{PREFIX}/preview?node={NODE}&token={paused.token}&index=0"), repeat),
            )
        )
        waiter.stop(NODE, paused.token)
        rows.append(
            Row(
                f"/bus/list during {RENDERS} renders of 4096x4096",
                list_during_renders(store, address, max(1, repeat // 3)),
            )
        )
    rows.append(
        Row(
            "Waiter.choose -> wake (in-process)",
            wake_latencies(waiter, n, event_wait, lambda p: waiter.choose(p.node, p.token, 1), 0.003),
        )
    )

    g = torch.Generator().manual_seed(0)
    image, mask = torch.rand(1, 1024, 1024, 3, generator=g), torch.rand(1, 1024, 1024, generator=g)
    rows.append(Row("publish 1024x1024 f32 + thumbnail", timed_ms(lambda: store.publish("bench", image, mask), repeat)))
    rows.append(Row("thumbnail 1024x1024 alone", timed_ms(lambda: images.png_bytes(images.thumbnail(image)), repeat)))
    return rows


def check_targets(rows: list[Row]) -> list[Target]:
    by_path = {r.path: r for r in rows}
    wake = by_path["POST /choice -> wake (event)"].median_ms
    preview = by_path["pause preview 2048x2048, first look"].median_ms
    listing = by_path[f"/bus/list during {RENDERS} renders of 4096x4096"].p95_ms
    return [
        Target(
            "POST -> wake median (ms)",
            wake,
            f"< {WAKE_TARGET_MS:g}",
            wake < WAKE_TARGET_MS,
            f"100 ms polling: mean {by_path['POST /choice -> wake (100 ms poll)'].mean_ms:.1f} ms",
        ),
        Target(
            "pause preview 2048x2048 median, first look (ms)",
            preview,
            f"< {PREVIEW_TARGET_MS:g}",
            preview < PREVIEW_TARGET_MS,
            f"render alone {by_path['preview render 2048x2048 alone'].median_ms:.1f} ms, "
            f"cached {by_path['pause preview 2048x2048'].median_ms:.1f} ms",
        ),
        Target(
            f"/bus/list p95 during {RENDERS} renders (ms)",
            listing,
            f"< {LIST_UNDER_RENDER_P95_MS:g}",
            listing < LIST_UNDER_RENDER_P95_MS,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="rounds per wake-up path (default 200)")
    ap.add_argument("--repeat", type=int, default=10, help="timed runs of publish and thumbnail")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    ap.add_argument("--dir", help="folder for the bus (default: a temp folder)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when the target fails")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = run(args.n, args.repeat, Path(tmp))
    print_table(rows)
    targets = check_targets(rows)
    passed = print_targets(targets)
    if args.json:
        write_json(args.json, rows, targets, torch=torch.__version__)
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
