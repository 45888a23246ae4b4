"""How the local backend tells its build runner is still alive, from /proc's view of it."""

from __future__ import annotations

import os
from pathlib import Path

from rlayer.builders.runner import RUNNER_MODULE, is_runner

RUNNER_CMDLINE = f"/usr/bin/python3\0-m\0{RUNNER_MODULE}\0run\0/builds/b-1\0".encode()


def test_a_running_or_sleeping_runner_is_alive() -> None:
    assert is_runner("R", RUNNER_CMDLINE)
    assert is_runner("S", RUNNER_CMDLINE)


def test_a_runner_still_inside_execve_is_alive() -> None:
    # Its arguments are not set yet: /proc shows an empty cmdline for a moment.
    assert is_runner("R", b"")


def test_an_exited_runner_is_gone() -> None:
    assert not is_runner("Z", RUNNER_CMDLINE)
    assert not is_runner("Z", b"")


def test_a_reused_pid_is_not_the_runner() -> None:
    own = Path(f"/proc/{os.getpid()}/cmdline").read_bytes()
    assert own and not is_runner("S", own)
