"""Benchmark how soon the `gates` command line answers: a whole `python -m gates ...` process.

Run from the repository root:

    python benchmarks/bench_cli.py [--repeat 9] [--json OUT] [--strict]

Each row is one command run as a new process on a bus of a few small slots, timed from spawn to
exit (median of --repeat runs, after one untimed run that warms the disk cache), with the CPU
time the process used in its note (user + system: what a busy machine stretches least): `--version`,
`ls`, `info`, `history`, `rm`, `mv`, `pin` and `config`, none of which makes a tensor, so none
imports torch, numpy or Pillow. `python -c pass` is the interpreter's own start-up, the floor
under every row; `import torch` what each command cost before it started without torch.

Targets (each command's median < 150 ms) are printed as PASS/FAIL; only --strict turns a FAIL
into exit 1.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import Row, Target, print_table, print_targets, write_json

import gates

TARGET_MS = 150.0
SLOTS = 3


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Milliseconds from spawning `python argv` to its exit, and the CPU milliseconds it used; a
    failing command stops the bench."""
    cpu, start = _cpu_s(), time.perf_counter()
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True)
    elapsed, cpu = (time.perf_counter() - start) * 1000, (_cpu_s() - cpu) * 1000
    if done.returncode != 0:
        raise SystemExit(f"`python {' '.join(argv)}` failed: {done.stderr.strip()}")
    return elapsed, cpu


def _row(path: str, argvs: list[list[str]], env: dict[str, str]) -> Row:
    """The runs of one row, the first left out; the CPU time's median goes in the note."""
    runs = [_timed(argv, env) for argv in argvs][1:]
    return Row(path, [wall for wall, _ in runs], note=f"cpu {statistics.median(cpu for _, cpu in runs):.1f} ms")


def _commands(repeat: int) -> dict[str, list[list[str]]]:
    """Per row, the argument lists of its runs (one untimed first): `rm` removes a slot each run
    and `mv` moves one back and forth, so every run does the same work."""
    runs = repeat + 1
    same = {
        "--version": ["--version"],
        "ls": ["ls"],
        "info": ["info", "slot0"],
        "history": ["history", "slot0"],
        "pin": ["pin", "slot1"],
        "config": ["config"],
    }
    rows = {name: [argv] * runs for name, argv in same.items()}
    rows["rm"] = [["rm", f"doomed{i}", "-y"] for i in range(runs)]
    rows["mv"] = [["mv", "here", "there"] if i % 2 == 0 else ["mv", "there", "here"] for i in range(runs)]
    return rows


def run(repeat: int, folder: Path) -> list[Row]:
    import torch  # the setup publishes: only the timed processes must do without it

    bus = folder / "bus"
    for i in range(SLOTS):
        gates.publish(bus, f"slot{i}", torch.rand(1, 64, 64, 3), latent={"samples": torch.rand(1, 4, 8, 8)})
    gates.publish(bus, "here", torch.rand(1, 64, 64, 3))
    for i in range(repeat + 1):
        gates.publish(bus, f"doomed{i}", torch.rand(1, 8, 8, 3))
    # the command line as installed; PYTHONPATH only where this checkout is not the installed one
    env = {**os.environ, "PYTHONPATH": str(Path(gates.__file__).resolve().parents[1])}
    rows = [
        _row("python -c pass", [["-c", "pass"]] * (repeat + 1), env),
        _row("python -c 'import torch'", [["-c", "import torch"]] * (repeat + 1), env),
    ]
    for name, runs in _commands(repeat).items():
        rows.append(_row(f"gates {name}", [["-m", "gates", "--bus", str(bus), *argv] for argv in runs], env))
    return rows


def check_targets(rows: list[Row]) -> list[Target]:
    floor = rows[0].median_ms
    return [
        Target(
            f"{r.path} median (ms)",
            r.median_ms,
            f"< {TARGET_MS:g}",
            r.median_ms < TARGET_MS,
            f"{r.note}; interpreter alone {floor:.0f} ms",
        )
        for r in rows
        if r.path.startswith("gates ")
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9, help="timed runs per command (default 9)")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.repeat, Path(tmp))
    print_table(rows)
    targets = check_targets(rows)
    passed = print_targets(targets)
    if args.json:
        write_json(args.json, rows, targets)
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
