"""Benchmark the dataset library: listing a big folder, and loading a page of big images.

Run from the repository root:

    python benchmarks/bench_dataset.py [--files 10000] [--runs 5] [--json OUT] [--strict]

* `scandir alone`: one `os.scandir` of the generated folder, names only: the floor a listing
  cannot beat when it reads the folder at all.
* `scandir + stat each`: the same with a stat of every entry (what a listing that refreshed
  every file's size and time would cost).
* `first scan`: `Scanner.scan` of the folder never seen (scandir, a stat of each image and
  caption, pairing, natural sort).
* `re-scan, unchanged`: the same Scanner again, the folder untouched for longer than RACY_NS:
  one stat of the folder, the listing returned as it was.
* `re-scan after one file added`: the folder changed, so it is read again (scandir, a stat of
  the new file only, pairing and sort of the whole listing).
* `Pillow decode, sequential`: `Image.open(path).load()` of the page's 16 files one after the
  other on one thread: the reference.
* `page load`: `page.load` + `page.assemble` of the same 16 files: reading them without
  following links, the completeness check, decoding on a thread per CPU, digests of bytes and
  pixels, captions, and the float32 batch and mask.
* `..., CPU time`: the same two, counted in CPU time of all the process's threads: on a
  machine other processes load, the steadier figure of the work each does; the page's split
  into `load()` (reading, checking, decoding, digests, captions) and `assemble()` (writing
  the [16,1024,1024,3] float32 batch, 201 MB of memory the kernel must hand over and zero).

Targets: re-scan < 200 ms (median); a page < 2x Pillow's sequential decode, for 16 PNG and
for 16 JPEG files of 1024x1024, compared on the fastest of --runs runs of each (on a machine
that other processes load, the run least disturbed; medians are printed beside them). Printed
as PASS/FAIL; --strict turns a FAIL into exit 1. All timings are taken back to back in one
process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from report import Row, Target, print_targets

from gates.dataset.page import assemble, load
from gates.dataset.scan import RACY_NS, Scanner

RESCAN_TARGET_MS = 200.0
PAGE_TARGET_RATIO = 2.0
PAGE = 16
SIDE = 1024


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds of each of `runs` calls of `fn`, after one untimed call."""
    return timed_cpu(fn, runs)[0]


def timed_cpu(fn: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds (all the process's threads) of each of `runs` calls of `fn`.

    On a machine other processes load, the CPU time is the steadier figure of the work done.
    """
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def make_folder(folder: Path, files: int) -> None:
    """`files` small PNGs named img0.png..., every other one with a caption beside it, dated
    well in the past (a folder being curated, not one being written)."""
    tiny = _png(np.zeros((2, 2, 3), np.uint8))
    for i in range(files):
        (folder / f"img{i}.png").write_bytes(tiny)
        if i % 2 == 0:
            (folder / f"img{i}.txt").write_bytes(b"a caption")
    settle(folder)


def settle(folder: Path) -> None:
    old = time.time_ns() - 10 * RACY_NS
    os.utime(folder, ns=(old, old))


def _png(levels: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    import io

    b = io.BytesIO()
    Image.fromarray(levels).save(b, fmt, **options)
    return b.getvalue()


def photo_like(seed: int) -> np.ndarray:
    """A 1024x1024 RGB image with a photo's mix of smooth areas, edges and grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    base = np.stack([np.sin(x * (3 + seed)) * 0.5 + 0.5, y, (x + y) / 2], axis=-1)
    blocks = rng.random((16, 16, 3), dtype=np.float32).repeat(SIDE // 16, 0).repeat(SIDE // 16, 1)
    grain = rng.normal(0, 0.03, (SIDE, SIDE, 3)).astype(np.float32)
    return (np.clip(0.6 * base + 0.4 * blocks + grain, 0, 1) * 255).astype(np.uint8)


def make_page(folder: Path, fmt: str) -> list[str]:
    names = []
    for i in range(PAGE):
        name = f"page{i:02d}.{'png' if fmt == 'PNG' else 'jpg'}"
        options: dict[str, object] = {"quality": 92} if fmt == "JPEG" else {}
        (folder / name).write_bytes(_png(photo_like(i), fmt, **options))
        if i % 2:
            (folder / f"page{i:02d}.txt").write_text("a caption, with tags", encoding="utf-8")
        names.append(name)
    return names


def pillow_sequential(folder: Path, names: list[str]) -> None:
    for name in names:
        with Image.open(folder / name) as img:
            img.load()


def bench_scan(root: Path, files: int, runs: int) -> tuple[list[Row], list[Target]]:
    folder = root / "scan"
    folder.mkdir()
    make_folder(folder, files)
    scandir = timed(lambda: [e.name for e in os.scandir(folder)], runs)
    scandir_stat = timed(lambda: [e.stat(follow_symlinks=False) for e in os.scandir(folder)], runs)
    firsts = []
    for _ in range(runs):
        start = time.perf_counter()
        Scanner().scan(folder)
        firsts.append((time.perf_counter() - start) * 1000)
    scanner = Scanner()
    listing = scanner.scan(folder)
    assert len(listing.entries) == files
    rescan = timed(lambda: scanner.scan(folder), runs)
    added = []
    for i in range(runs):
        (folder / f"new{i}.png").write_bytes(b"")
        start = time.perf_counter()
        scanner.scan(folder)
        added.append((time.perf_counter() - start) * 1000)
    rows = [
        Row("scandir alone", scandir, note=f"{files * 3 // 2} entries"),
        Row("scandir + stat each", scandir_stat),
        Row("first scan", firsts, note=f"{files} images, {files // 2} captions"),
        Row("re-scan, unchanged", rescan),
        Row("re-scan after one file added", added),
    ]
    ratio = statistics.median(rescan) / statistics.median(scandir)
    targets = [
        Target(
            f"re-scan of {files} files",
            statistics.median(rescan),
            f"< {RESCAN_TARGET_MS:.0f} ms",
            statistics.median(rescan) < RESCAN_TARGET_MS,
            f"{ratio:.2g}x scandir alone, {statistics.median(scandir):.1f} ms",
        )
    ]
    return rows, targets


def bench_page(root: Path, fmt: str, runs: int) -> tuple[list[Row], list[Target]]:
    folder = root / fmt.lower()
    folder.mkdir()
    names = make_page(folder, fmt)
    listing = Scanner().scan(folder)
    entries = [e for e in listing.entries if e.rel in names]
    size_mb = sum((folder / n).stat().st_size for n in names) / 1e6
    pillow, pillow_cpu = timed_cpu(lambda: pillow_sequential(folder, names), runs)

    def page() -> None:
        image, _, built = assemble(load(listing.root, entries), listing.root)
        assert image.shape == (PAGE, SIDE, SIDE, 3) and not built.failed

    ours, ours_cpu = timed_cpu(page, runs)
    _, load_cpu = timed_cpu(lambda: load(listing.root, entries), runs)
    loaded = load(listing.root, entries)
    _, batch_cpu = timed_cpu(lambda: assemble(loaded, listing.root), runs)
    ratio = min(ours) / min(pillow)
    rows = [
        Row(f"{fmt}: Pillow decode, sequential", pillow, note=f"{PAGE} files, {size_mb:.1f} MB"),
        Row(f"{fmt}: page load", ours, note=f"{os.cpu_count()} CPUs"),
        Row(f"{fmt}: Pillow decode, CPU time", pillow_cpu),
        Row(f"{fmt}: page load, CPU time", ours_cpu, note="all threads"),
        Row(f"{fmt}:   of which load(), CPU", load_cpu, note="read, check, decode, digests, captions"),
        Row(f"{fmt}:   of which assemble(), CPU", batch_cpu, note="the float32 batch: fresh memory"),
    ]
    target = Target(
        f"{fmt} page of {PAGE} {SIDE}x{SIDE} / Pillow sequential",
        ratio,
        f"< {PAGE_TARGET_RATIO:g}x",
        ratio < PAGE_TARGET_RATIO,
        f"fastest runs {min(ours):.0f} ms against {min(pillow):.0f} ms;"
        f" medians {statistics.median(ours):.0f} against {statistics.median(pillow):.0f} ms",
    )
    return rows, [target]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to generate the folders")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    print(f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()[0]:.2f}")
    rows: list[Row] = []
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for part in (
            bench_scan(Path(tmp), args.files, args.runs),
            bench_page(Path(tmp), "PNG", args.runs),
            bench_page(Path(tmp), "JPEG", args.runs),
        ):
            rows += part[0]
            targets += part[1]
    print(f"\n{'path':<36} {'median':>10} {'min':>10}  note")
    for row in rows:
        print(f"{row.path:<36} {row.median_ms:>8.2f}ms {min(row.samples_ms):>8.2f}ms  {row.note}")
    ok = print_targets(targets)
    if args.json:
        report = {"rows": [r.to_dict() for r in rows], "targets": [t.__dict__ for t in targets]}
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
