"""A claim's owner: this process by host, pid and start time, so a dead server's claims hold nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from gates.dataset.owner import _start_time, node_owner, owner_alive, process_owner


def _owner_of(pid: int) -> str:
    machine = process_owner().removeprefix("proc@").rsplit(":", 2)[0]
    return f"proc@{machine}:{pid}:{_start_time(pid)}"


def test_this_process_is_alive_and_named_by_host_pid_and_start():
    me = process_owner()
    assert me == _owner_of(os.getpid()) and owner_alive(me) is True
    assert owner_alive(node_owner("12:5")) is True and node_owner("3") != node_owner("4")


def test_an_ended_process_is_dead_and_a_reused_pid_is_another_process():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    owner = _owner_of(child.pid)
    assert owner_alive(owner) is True
    assert owner_alive(owner.rsplit(":", 1)[0] + ":1") is False  # same pid, another start time
    child.communicate(b"")
    assert owner_alive(owner) is False


def test_owners_of_other_machines_and_foreign_names_are_unknown_so_their_claims_lapse():
    assert owner_alive("proc@another-host:1:5") is None
    assert owner_alive("tab-7") is None and owner_alive("proc@garbled") is None
    machine = process_owner().removeprefix("proc@").rsplit(":", 2)[0]
    host = machine.split("/")[0]
    if host != machine:  # same host name, another pid namespace (a container): another machine
        assert owner_alive(f"proc@{host}/x/1:{os.getpid()}:{_start_time(os.getpid())}") is None
