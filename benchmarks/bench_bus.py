"""Benchmark the slot bus against the floors it should approach and the PNG path it replaces.

Run from the repository root:

    python benchmarks/bench_bus.py [--device cpu|cuda] [--json OUT] [--quick] [--repeat N]
                                   [--dir DIR] [--strict] [--s3 | --s3-only]

Every path moves the same IMAGE [B,H,W,3] + MASK [B,H,W] float32 tensors. `memcopy` (a clone)
is the floor for a load, a plain open/write/close of the raw bytes (with and without fsync) is
the floor for a publish, and the seed's per-image 8-bit PNG files plus torch.save/torch.load are
the alternatives; `--s3` adds the object-store bus's rows against moto's S3 server on loopback
(bench_s3.py: load and publish against a plain obstore GET and PUT of the same bytes, a listing
of 10,000 slots). Each figure is the median of N runs; the targets are printed as PASS/FAIL and
only turn into a non-zero exit status with --strict.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from report import Row, Target, print_targets

from gates import images
from gates.bus.local import listing
from gates.bus.local.store import SlotStore

WORKLOADS: list[tuple[int, int, int]] = [(1, 1024, 1024), (1, 2048, 2048), (16, 1024, 1024)]
LIST_SLOTS = 1000
LIST_SHAPE = (1, 64, 64)

# Targets, reported as PASS/FAIL: ratios are "path time / reference time" unless named.
LOAD_VS_MEMCOPY_MAX = 1.2
COLD_LOAD_VS_READ_MAX = 1.15
CUDA_LOAD_VS_COPY_MAX = 1.2
LOAD_VS_PNG_MIN_SPEEDUP = 10.0
PUBLISH_VS_PLAIN_MAX = 3.0
PUBLISH_VS_PLAIN_MAX_2048 = 2.0  # the 2048x2048 publish: a gate's typical pass
LIST_MAX_MS = 100.0
BIG_LIST_SLOTS = 10_000  # issue 22: the listing at scale (a re-list of an unchanged bus)
BIG_LIST_SHAPE = (1, 16, 16)  # header-only reads: the size only fills the disk
BIG_LIST_WARM_MAX_MS = 50.0
BIG_LIST_NEW_PROCESS_MAX_MS = 400.0  # a `gates ls`'s listing, from the rows a listing saved

LOAD_PATHS = ("load", "load_noverify", "load_cold", "load_cuda", "png_load", "torch_load")
SLOT_PATHS = ("publish", "load", "load_noverify", "load_cold", "load_cuda")


@dataclass
class Workload:
    name: str
    shape: tuple[int, int, int]
    bytes: int
    rows: dict[str, Row] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows[row.path] = row


def timed(
    fn: Callable[[], Any],
    repeat: int,
    sync: Callable[[], None] | None = None,
    before: Callable[[], None] | None = None,
    keep: bool = True,
) -> tuple[list[float], Any]:
    """Run `fn` untimed, then `repeat` timed times; return the times in ms and the last result.

    The untimed run warms the page cache and (for CUDA) the context, and makes every timed write
    an overwrite, as republishing a slot is. With `keep`, every result is held until the end, as
    ComfyUI holds a node's outputs: each run then pays for fresh memory, the same for a clone as
    for a load, instead of some runs reusing the block the previous run freed (several times
    faster, and a matter of allocator state). Then the untimed runs are `repeat` + 1 held
    results, freed before the timing: on a virtual machine whose host backs memory on first touch, the
    first use of a block costs many times a later one (a 2048x2048 load into huge pages: 110-180
    ms on never-used memory, 12 ms after), and a ComfyUI that has run for a while reuses memory
    it has touched. `before` runs untimed ahead of each run; `sync` runs inside the timing, so
    asynchronous CUDA work is counted.
    """
    kept = [fn() for _ in range(repeat + 1 if keep else 1)]  # settle: see the docstring
    if sync is not None:
        sync()
    kept.clear()  # the timed runs hold at most `repeat` results: memory the settling touched
    samples = []
    for _ in range(repeat):
        if not keep:
            kept.clear()
        if before is not None:
            before()
        t0 = time.perf_counter()
        kept.append(fn())
        if sync is not None:
            sync()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return samples, kept[-1]


def max_abs_err(got: tuple[torch.Tensor, torch.Tensor], want: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Largest difference over image and mask; inf when a shape differs (a silent reshape is a bug)."""
    worst = 0.0
    for g, w in zip(got, want):
        g = g.to("cpu", torch.float32)
        if g.shape != w.shape:
            return float("inf")
        worst = max(worst, (g - w).abs().max().item())
    return worst


def make_tensors(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Photo-like content: smooth colour fields plus mild grain, and a soft-edged mask.

    Pure noise would be the worst case for PNG's deflate and overstate the slot bus's lead;
    the bus itself does not care about content.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h).view(1, h, 1, 1)
    x = torch.linspace(0, 1, w).view(1, 1, w, 1)
    phase = torch.rand(b, 1, 1, 3, generator=g) * 6.28
    smooth = 0.5 + 0.35 * torch.sin(6.0 * x + phase) * torch.cos(4.0 * y + phase)
    image = (smooth + 0.02 * torch.randn(b, h, w, 3, generator=g)).clamp(0, 1).contiguous()
    r = ((x[..., 0] - 0.5) ** 2 + (y[..., 0] - 0.5) ** 2).sqrt()
    mask = (1.0 - ((r - 0.25) * 20).clamp(0, 1)).expand(b, h, w).contiguous()
    return image, mask


def _raw(t: torch.Tensor) -> np.ndarray:
    """Bytes of a contiguous CPU tensor without copying (what a plain file write would send)."""
    return t.reshape(-1).view(torch.uint8).numpy()


def plain_write(path: Path, image: torch.Tensor, mask: torch.Tensor, fsync: bool) -> None:
    """The least a publish must do: hand both buffers to the kernel (and, like publish, fsync)."""
    with open(path, "wb") as f:
        f.write(_raw(image))
        f.write(_raw(mask))
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def plain_read(path: Path, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Read back a plain write, untimed, only to prove it stored the bytes."""
    data = torch.from_numpy(np.fromfile(path, dtype=np.float32))
    n = image.numel()
    return data[:n].view(image.shape), data[n:].view(mask.shape)


def drop_cache(path: Path) -> None:
    """Evict a file's clean pages from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def plain_read_into(path: Path, size: int) -> torch.Tensor:
    """The floor for a cold load: read the file's bytes sequentially into fresh memory."""
    buf = torch.empty(size, dtype=torch.uint8)
    with open(path, "rb", buffering=0) as f:
        view = memoryview(buf.numpy())
        done = 0
        while done < size:
            done += f.readinto(view[done:])
    return buf


def png_save(folder: Path, image: torch.Tensor, mask: torch.Tensor) -> None:
    """The seed's slot layout, made fair: every batch item as its own 8-bit image/mask PNG.

    Pillow's default compression (level 6), as a plain `img.save(path)` in the seed did.
    """
    for i in range(image.shape[0]):
        Image.fromarray(images.to_uint(image[i]), "RGB").save(folder / f"image_{i}.png")
        Image.fromarray(images.to_uint(mask[i][..., None])[:, :, 0], "L").save(folder / f"mask_{i}.png")


def png_load(folder: Path, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the seed's PNGs back with its own loaders and stack them into a batch."""
    ims = [images.read_image(folder / f"image_{i}.png") for i in range(batch)]
    masks = [images.read_mask(folder / f"mask_{i}.png") for i in range(batch)]
    return torch.cat(ims), torch.cat(masks)


def bench_workload(shape: tuple[int, int, int], work: Path, repeat: int, cuda: bool) -> Workload:
    """Measure every path on one workload; each path's result is checked against the original."""
    b, h, w = shape
    image, mask = make_tensors(b, h, w)
    want = (image, mask)
    wl = Workload(f"{b}x{h}x{w}x3", shape, image.nbytes + mask.nbytes)
    store = SlotStore(work / "bus")
    raw_file = work / "plain.bin"
    png_dir = work / "png"
    png_dir.mkdir(exist_ok=True)
    pt_file = work / "slot.pt"

    samples, got = timed(lambda: (image.clone(), mask.clone()), repeat)
    wl.add(Row("memcopy", samples, max_abs_err(got, want), "into fresh memory: the ratios' base"))
    samples, got = timed(lambda: (image.clone(), mask.clone()), repeat, keep=False)
    wl.add(Row("memcopy_reuse", samples, max_abs_err(got, want), "into the block the last copy freed"))

    # Without fsync: a new file each run, the pure cost of handing the bytes to the page cache.
    # With fsync: overwrite the previous file durably, the least a publish that replaces a
    # slot must do (freeing the old blocks is part of it; and ext4 flushes an overwritten file
    # on close anyway, so an overwrite without fsync would be no floor).
    samples, _ = timed(
        lambda: plain_write(raw_file, image, mask, False), repeat, before=lambda: raw_file.unlink(missing_ok=True)
    )
    wl.add(Row("plain_write", samples, max_abs_err(plain_read(raw_file, image, mask), want), "new file"))
    samples, _ = timed(lambda: plain_write(raw_file, image, mask, True), repeat)
    wl.add(Row("plain_write_fsync", samples, max_abs_err(plain_read(raw_file, image, mask), want), "overwrite + fsync"))

    samples, _ = timed(lambda: store.publish("bench", image, mask), repeat)
    wl.add(Row("publish", samples, max_abs_err(store.load("bench"), want), "replaces the slot; thumbnail, 3 fsyncs"))

    for name, verify in (("load", True), ("load_noverify", False)):
        samples, got = timed(lambda verify=verify: store.load("bench", verify=verify), repeat)
        wl.add(Row(name, samples, max_abs_err(got, want)))

    slot_file = store.slot_dir("bench") / "slot.safetensors"
    size = slot_file.stat().st_size
    samples, _ = timed(lambda: plain_read_into(slot_file, size), repeat, before=lambda: drop_cache(slot_file))
    wl.add(Row("plain_read_cold", samples, 0.0, "page cache dropped: load_cold's floor"))
    samples, got = timed(lambda: store.load("bench"), repeat, before=lambda: drop_cache(slot_file))
    wl.add(Row("load_cold", samples, max_abs_err(got, want), "verified, page cache dropped"))

    if cuda:
        sync = torch.cuda.synchronize
        pinned = (image.pin_memory(), mask.pin_memory())
        samples, got = timed(lambda: tuple(t.to("cuda", non_blocking=True) for t in pinned), repeat, sync)
        wl.add(Row("h2d_copy", samples, max_abs_err(got, want), "pinned .to('cuda'): load_cuda's floor"))
        samples, got = timed(lambda: store.load("bench", device="cuda"), repeat, sync)
        wl.add(Row("load_cuda", samples, max_abs_err(got, want)))

    save_ms, _ = timed(lambda: png_save(png_dir, image, mask), repeat)
    load_ms, got = timed(lambda: png_load(png_dir, b), repeat)
    png_err = max_abs_err(got, want)
    wl.add(Row("png_save", save_ms, png_err, "8-bit, one PNG per batch item"))
    wl.add(Row("png_load", load_ms, png_err))
    wl.add(Row("png_roundtrip", [save + load for save, load in zip(save_ms, load_ms)], png_err))

    save_ms, _ = timed(lambda: torch.save({"image": image, "mask": mask}, pt_file), repeat)
    load_ms, got = timed(lambda: torch.load(pt_file, weights_only=True), repeat)
    pt_err = max_abs_err((got["image"], got["mask"]), want)
    wl.add(Row("torch_save", save_ms, pt_err, "no fsync"))
    wl.add(Row("torch_load", load_ms, pt_err))
    wl.add(Row("torch_save_load", [save + load for save, load in zip(save_ms, load_ms)], pt_err))

    for p in (store.root, png_dir):
        shutil.rmtree(p, ignore_errors=True)
    return wl


def bench_list(work: Path, repeat: int) -> tuple[list[float], int]:
    """Median time of store.list() over LIST_SLOTS small slots (header-only reads)."""
    store = SlotStore(work / "list-bus")
    image, mask = make_tensors(*LIST_SHAPE)
    for i in range(LIST_SLOTS):
        store.publish(f"s{i:04d}", image, mask, meta={"i": i})
    samples, listed = timed(store.list, repeat)
    shutil.rmtree(store.root, ignore_errors=True)
    return samples, len(listed)


def cpu_ms(fn: Callable[[], Any]) -> float:
    """CPU time of one call in ms (time.process_time: steadier than a wall clock on a loaded
    machine, and what the listing costs the server's process)."""
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) * 1000.0


def bench_big_list(work: Path, repeat: int) -> dict[str, float]:
    """list() of BIG_LIST_SLOTS slots: the first in this process (every header read; it saves
    the rows), the first in a new process (median of `repeat`: the listing forgotten, as in
    each `gates ls`, so it starts from the saved rows and checks every slot's stats), a
    re-list of the unchanged bus (median of `repeat`), and a re-list after one publish.

    20 slots are published and their files copied to fill the bus: what a listing reads is the
    same, in a fraction of the time. On the shared 2-core machine: cold 2205 ms, new process
    250 ms, warm 12.5 ms, after a publish 138 ms of CPU (`gates ls` itself, a new process,
    2156 -> 544 ms of CPU with interpreter start and printing, alternating with the code
    before the saved rows). Then the bench waits out listing.RACY_NS, as a bus in use
    is older than that: a row read sooner after its write is read again at each re-check.
    """
    store = SlotStore(work / "big-list-bus")
    image, mask = make_tensors(*BIG_LIST_SHAPE)
    seeds = [f"seed{i:02d}" for i in range(20)]
    for i, name in enumerate(seeds):
        store.publish(name, image, mask, meta={"i": i})
    for i in range(BIG_LIST_SLOTS - len(seeds)):
        src, dst = store.root / seeds[i % len(seeds)], store.root / f"s{i:05d}"
        dst.mkdir()
        for f in ("slot.safetensors", "thumb.png"):
            shutil.copyfile(src / f, dst / f)
    time.sleep(listing.RACY_NS / 1e9)
    cold = cpu_ms(store.list)  # reads every header, and saves the rows for the next process
    warm = statistics.median(cpu_ms(store.list) for _ in range(repeat))
    fresh = statistics.median(cpu_ms(lambda: (listing._listings.clear(), store.list())) for _ in range(repeat))
    store.publish(seeds[0], image, mask)
    changed = cpu_ms(store.list)
    listed = len(store.list())
    shutil.rmtree(store.root, ignore_errors=True)
    return {"slots": listed, "cold_ms": cold, "new_process_ms": fresh, "warm_ms": warm, "after_publish_ms": changed}


def print_table(wl: Workload) -> None:
    mem = wl.rows["memcopy"].median_ms
    png = wl.rows["png_roundtrip"].median_ms
    print(f"\n== {wl.name} float32 + mask ({wl.bytes / 2**20:.0f} MiB) ==")
    print(f"{'path':<18} {'median ms':>10} {'x memcopy':>10} {'png_rt / t':>11} {'max abs err':>12}  note")
    for row in wl.rows.values():
        vs_png = f"{png / row.median_ms:.1f}x" if row.path in LOAD_PATHS else ""
        print(
            f"{row.path:<18} {row.median_ms:>10.2f} {row.median_ms / mem:>9.2f}x {vs_png:>11} "
            f"{row.max_abs_err:>12.3g}  {row.note}"
        )


def check_targets(
    workloads: list[Workload], list_ms: float | None, big_list: dict[str, float] | None = None
) -> list[Target]:
    """Every target; the load-vs-PNG one applies to 1x1024x1024."""
    out: list[Target] = []

    def target(name: str, value: float, limit: str, ok: bool, extra: str = "") -> None:
        out.append(Target(name, value, limit, ok, extra))

    for wl in workloads:
        r = {k: v.median_ms for k, v in wl.rows.items()}
        target(
            f"{wl.name} load / memcopy",
            r["load"] / r["memcopy"],
            f"<= {LOAD_VS_MEMCOPY_MAX}",
            r["load"] / r["memcopy"] <= LOAD_VS_MEMCOPY_MAX,
            f"verify=False: {r['load_noverify'] / r['memcopy']:.2f}x",
        )
        ratio = r["publish"] / r["plain_write_fsync"]
        limit = PUBLISH_VS_PLAIN_MAX_2048 if wl.shape == (1, 2048, 2048) else PUBLISH_VS_PLAIN_MAX
        target(
            f"{wl.name} publish / plain_write_fsync",
            ratio,
            f"<= {limit}",
            ratio <= limit,
            f"vs plain_write without fsync: {r['publish'] / r['plain_write']:.2f}x",
        )
        cold = r["load_cold"] / r["plain_read_cold"]
        target(
            f"{wl.name} load_cold / plain_read_cold", cold, f"<= {COLD_LOAD_VS_READ_MAX}", cold <= COLD_LOAD_VS_READ_MAX
        )
        if "load_cuda" in r:
            gpu = r["load_cuda"] / r["h2d_copy"]
            target(
                f"{wl.name} load_cuda / pinned h2d_copy",
                gpu,
                f"<= {CUDA_LOAD_VS_COPY_MAX}",
                gpu <= CUDA_LOAD_VS_COPY_MAX,
            )
        errs = {p: wl.rows[p].max_abs_err for p in SLOT_PATHS if p in wl.rows}
        target(
            f"{wl.name} slot paths error",
            max(errs.values()),
            "== 0",
            all(e == 0 for e in errs.values()),
            ", ".join(errs),
        )
        if wl.shape == (1, 1024, 1024):
            speedup = r["png_roundtrip"] / r["load"]
            target(
                f"{wl.name} png_roundtrip / load",
                speedup,
                f">= {LOAD_VS_PNG_MIN_SPEEDUP}",
                speedup >= LOAD_VS_PNG_MIN_SPEEDUP,
                f"vs png_load alone: {r['png_load'] / r['load']:.1f}x",
            )
    if list_ms is not None:
        target(f"list() of {LIST_SLOTS} slots (ms)", list_ms, f"< {LIST_MAX_MS}", list_ms < LIST_MAX_MS)
    if big_list is not None:
        warm = big_list["warm_ms"]
        target(
            f"list() of {BIG_LIST_SLOTS} slots, warm (ms CPU)",
            warm,
            f"< {BIG_LIST_WARM_MAX_MS}",
            warm < BIG_LIST_WARM_MAX_MS,
            f"cold {big_list['cold_ms']:.0f} ms, after a publish {big_list['after_publish_ms']:.0f} ms",
        )
        fresh = big_list["new_process_ms"]
        target(
            f"list() of {BIG_LIST_SLOTS} slots, new process (ms CPU)",
            fresh,
            f"< {BIG_LIST_NEW_PROCESS_MAX_MS}",
            fresh < BIG_LIST_NEW_PROCESS_MAX_MS,
            "from the saved rows, every slot's stats checked",
        )
    return out


def machine_info(device: str) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "device": device,
        "cuda_device": torch.cuda.get_device_name() if device == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda adds load(device='cuda') and a host-to-device copy floor",
    )
    ap.add_argument("--json", type=Path, help="write every number here")
    ap.add_argument("--quick", action="store_true", help="1x1024x1024 only, 2 repeats, no list() tests")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", type=Path, help="where temp files go; pick the disk ComfyUI writes to")
    ap.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: torch's); 1 is steadier on a busy machine"
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    ap.add_argument("--s3", action="store_true", help="add the object-store rows (needs obstore and moto[server])")
    ap.add_argument("--s3-only", action="store_true", help="only the object-store rows")
    args = ap.parse_args(argv)
    if args.s3_only:
        from bench_s3 import bench_s3

        passed = print_targets(bench_s3(max(1, args.repeat)))
        return 1 if args.strict and not passed else 0

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda" and torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        print("note: CUDA is not available; skipping the CUDA rows")
    shapes = WORKLOADS[:1] if args.quick else WORKLOADS
    repeat = 2 if args.quick else max(1, args.repeat)
    device = "cuda" if cuda else "cpu"

    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-bus-", dir=args.dir))
    info = machine_info(device)
    gpu = f" ({info['cuda_device']})" if cuda else ""
    print(
        f"torch {info['torch']}, {info['cpu_count']} CPUs ({info['torch_threads']} torch threads), "
        f"device {device}{gpu}, repeat {repeat}, dir {work}"
    )
    busy = info["loadavg_1m"]
    if busy is not None and busy > 0.5:
        # Copies run on torch's intra-op threads: one that waits for a busy core stretches a
        # 1 ms clone to a scheduler tick, so figures taken on a busy machine swing widely.
        print(
            f"warning: load average {busy:.2f}; other processes will distort the timings "
            f"(--threads 1 makes them steadier)"
        )
    try:
        workloads = [bench_workload(s, work, repeat, cuda) for s in shapes]
        for wl in workloads:
            print_table(wl)
        list_samples, listed = bench_list(work, 5) if not args.quick else ([], 0)
        big_list = bench_big_list(work, 5) if not args.quick else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    list_ms = statistics.median(list_samples) if list_samples else None
    if list_ms is not None:
        print(f"\nlist() of {listed} slots {LIST_SHAPE[0]}x{LIST_SHAPE[1]}x{LIST_SHAPE[2]}x3: median {list_ms:.1f} ms")
    if big_list is not None:
        print(
            f"list() of {big_list['slots']:.0f} slots, CPU: cold {big_list['cold_ms']:.1f} ms, "
            f"new process {big_list['new_process_ms']:.1f} ms, warm {big_list['warm_ms']:.1f} ms, "
            f"after one publish {big_list['after_publish_ms']:.1f} ms"
        )
    results = check_targets(workloads, list_ms, big_list)
    if args.s3:
        from bench_s3 import bench_s3

        results += bench_s3(repeat)
    passed = print_targets(results)

    if args.json is not None:
        doc = {
            "machine": info,
            "repeat": repeat,
            "workloads": {
                wl.name: {
                    "bytes": wl.bytes,
                    "paths": {
                        p: {
                            "median_ms": r.median_ms,
                            "samples_ms": r.samples_ms,
                            "max_abs_err": r.max_abs_err,
                            "x_memcopy": r.median_ms / wl.rows["memcopy"].median_ms,
                        }
                        for p, r in wl.rows.items()
                    },
                }
                for wl in workloads
            },
            "list": {"slots": listed, "median_ms": list_ms, "samples_ms": list_samples},
            "big_list": big_list,
            "targets": [asdict(t) for t in results],
        }
        args.json.write_text(json.dumps(doc, indent=2))
        print(f"wrote {args.json}")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
