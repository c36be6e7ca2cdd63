"""Who holds a claim on a dataset's files: this process, named so a dead one can be told apart.

A claim keeps a page's files out of other runs' "not yet decided" pages until its owner decides
or releases them. A ComfyUI killed with -9 does neither, and a claim that lapsed only after
its time to live (half an hour) would hide those files from the ComfyUI restarted a minute
later. So an owner names its host, its process id and when that process started
(`comfy@host:pid:start`): a claim whose process is on this host and is gone, or is another
process now holding a reused pid, is dead at once. A claim from another host is trusted until
its time runs out, since nothing here can see that host's processes.

One owner per process, not per prompt: ComfyUI runs one prompt at a time, so a page paused in
this process is the only one it holds, and a run cancelled without a release hands its files
back to the next run of the same server instead of hiding them until the claim lapses.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

_PREFIX = "proc@"


@lru_cache(maxsize=1)
def process_owner() -> str:
    """This process's owner name: `proc@<host>:<pid>:<start>`."""
    return f"{_PREFIX}{_host()}:{os.getpid()}:{_start_time(os.getpid())}"


def owner_alive(owner: str) -> bool:
    """False when `owner` is a process of this host that has ended (or whose pid now belongs to
    another process); True otherwise, including owners of other hosts and names not made here."""
    if not owner.startswith(_PREFIX):
        return True
    try:
        host_pid, start = owner[len(_PREFIX) :].rsplit(":", 1)
        host, pid_text = host_pid.rsplit(":", 1)
        pid = int(pid_text)
    except ValueError:
        return True
    if host != _host():
        return True
    if pid == os.getpid():
        return start == _start_time(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        pass  # another user's process: it exists
    return start == _start_time(pid)


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname().replace(":", "_") or "localhost"


def _start_time(pid: int) -> str:
    """When process `pid` started, in clock ticks since boot (Linux); "" where that is unknown,
    which then only tells processes apart by pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return ""
    # the second field (the command) may hold spaces and parentheses: count from its end
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""
