"""Who holds a claim on a dataset's files: a node of this process, named so a dead one can be told apart.

A claim keeps a page's files out of other runs' "not yet decided" pages until its owner decides
or releases them. A ComfyUI killed with -9 does neither, and a claim that lapsed only after
its time to live would hide those files from the ComfyUI restarted a minute later. So an owner
names its machine, its process id and when that process started
(`proc@host/boot/pidns:pid:start#node`):
- a claim whose process is on this machine and has ended, or whose pid now belongs to another
  process, is dead at once;
- a claim whose process is on this machine and still runs holds however long its page stays
  paused (a person may take an hour over a page);
- a claim from another machine holds until its time to live runs out, since nothing here can
  see that machine's processes.
"This machine" is the host name, the boot and the pid namespace together: two containers
with one host name have their own pid numbers, and must not judge each other's.

One owner per Dataset Load node of the process, not per prompt: ComfyUI runs one prompt at a
time, so a run cancelled without a release hands its node's files back to that node's next run
instead of hiding them, and two Dataset Load nodes of one workflow never take each other's files.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import lru_cache

_PREFIX = "proc@"
_NODE = "#"


@lru_cache(maxsize=1)
def process_owner() -> str:
    """This process's owner name: `proc@<machine>:<pid>:<start>`."""
    return f"{_PREFIX}{_machine()}:{os.getpid()}:{_start_time(os.getpid())}"


def node_owner(node: str) -> str:
    """The owner name of one node of this process (`process_owner()#node`)."""
    return f"{process_owner()}{_NODE}{node}"[:200]


def owner_alive(owner: str) -> bool | None:
    """True: a process of this machine that still runs; False: one of this machine that has
    ended (or whose pid now belongs to another process); None: unknown (another machine, or a
    name not made here), so its claim's time to live decides."""
    if not owner.startswith(_PREFIX):
        return None
    try:
        machine_pid, start = owner[len(_PREFIX) :].split(_NODE, 1)[0].rsplit(":", 1)
        machine, pid_text = machine_pid.rsplit(":", 1)
        pid = int(pid_text)
    except ValueError:
        return None
    if machine != _machine() or pid <= 0:
        return None
    if pid == os.getpid():
        return start == _start_time(pid)
    if not _running(pid):
        return False
    return start == _start_time(pid)


@lru_cache(maxsize=1)
def _machine() -> str:
    """The host name, with the boot and the pid namespace where the system says them."""
    parts = [socket.gethostname() or "localhost"]
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            parts.append(f.read().strip()[:8])
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return "/".join(parts).replace(":", "_").replace(_NODE, "_")


def _running(pid: int) -> bool:
    """Whether process `pid` exists (a zombie counts: its start time tells it apart)."""
    if sys.platform == "win32":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        import _winapi

        try:
            handle = _winapi.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        except OSError as exc:
            return getattr(exc, "winerror", None) == 5  # access denied: it exists
        try:
            return bool(_winapi.GetExitCodeProcess(handle) == 259)  # STILL_ACTIVE
        finally:
            _winapi.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # another user's process: it exists
    return True


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
