"""A claim's owner: this process by host, pid and start time, so a dead server's claims hold nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from gates.dataset.owner import _start_time, owner_alive, process_owner


def _owner_of(pid: int) -> str:
    host = process_owner().removeprefix("proc@").rsplit(":", 2)[0]
    return f"proc@{host}:{pid}:{_start_time(pid)}"


def test_this_process_is_alive_and_named_by_host_pid_and_start():
    me = process_owner()
    assert me == _owner_of(os.getpid()) and owner_alive(me)


def test_an_ended_process_is_dead_and_a_reused_pid_is_another_process():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    owner = _owner_of(child.pid)
    assert owner_alive(owner)
    assert not owner_alive(owner.rsplit(":", 1)[0] + ":1")  # same pid, another start time
    child.communicate(b"")
    assert not owner_alive(owner)


def test_owners_of_other_hosts_and_foreign_names_are_trusted_until_their_claims_lapse():
    assert owner_alive("proc@another-host:1:5")
    assert owner_alive("tab-7") and owner_alive("proc@garbled")
