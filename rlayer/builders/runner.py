"""The runner of one local build: a process of its own (``python -m rlayer.builders.runner run
DIR``) that executes the plan the backend wrote, one command at a time inside the build root,
and keeps ``status.json`` current. Everything it knows is on disk, so any process can check
or stop the build (``rlayer.builders.local``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from pydantic import BaseModel, Field

from chalicelib.builders.base import BuildState
from chalicelib.models import utcnow
from rlayer.builders import buildroot

RUNNER_MODULE = "rlayer.builders.runner"
LOG_TAIL_LINES = 40
STOP_GRACE_S = 10.0


class Plan(BaseModel):
    build_id: str
    phases: list[tuple[str, list[str]]]
    env: dict[str, str]
    cwd: str
    timeout_s: float
    artifact_location: str
    # Extra Debian packages of the build root (RLAYER_SYSTEM_PACKAGES): a root of its own.
    root_extra: tuple[str, ...] = ()
    # Host paths the commands see at the same path inside the root.
    writable: list[str] = Field(default_factory=list)
    readable: list[str] = Field(default_factory=list)


class LocalBuildStatus(BaseModel):
    """``status.json`` of one build; written by the runner (and by stop_build)."""

    state: BuildState = BuildState.IN_PROGRESS
    current_phase: str | None = None
    current_command: str | None = None
    started_at: str = Field(default_factory=utcnow)
    finished_at: str | None = None
    reason: str | None = None
    # The process group of the command running now (each command gets its own group).
    command_pgid: int | None = None
    artifact_location: str | None = None
    phase_seconds: dict[str, float] = Field(default_factory=dict)


def write_json_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(data)
    tmp.replace(path)


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    if not log.exists():
        return []
    with log.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode("utf-8", errors="replace")
    return [line.rstrip() for line in deque(text.splitlines(), maxlen=lines)]


def is_runner(state: str, cmdline: bytes) -> bool:
    """Whether /proc's view of the recorded pid (its state, its cmdline) is our live runner.

    A zombie has exited. A cmdline naming something else is a reused pid. An empty cmdline
    is our runner still inside execve: Popen returns once the exec is past the point of no
    return, a moment before the kernel has set the new program's arguments.
    """
    return state != "Z" and (not cmdline or RUNNER_MODULE.encode() in cmdline)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class _Runner:
    def __init__(self, build_dir: Path) -> None:
        self.build_dir = build_dir
        self.plan = Plan.model_validate_json((build_dir / "plan.json").read_text())
        self.status = LocalBuildStatus.model_validate_json((build_dir / "status.json").read_text())
        self.log = (build_dir / "build.log").open("ab", buffering=0)
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.prefix: list[str] = []

    def save(self) -> None:
        write_json_atomic(self.build_dir / "status.json", self.status.model_dump_json())

    def say(self, text: str) -> None:
        self.log.write(f"[local-build {utcnow()}] {text}\n".encode())

    def on_term(self, signum: int, _frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            signal_group(self.child.pid, signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        deadline = time.monotonic() + self.plan.timeout_s
        self.status.current_phase = "build_root"
        self.save()
        try:
            root = buildroot.ensure(self.plan.root_extra, log=self.build_dir / "build.log")
        except buildroot.BuildRootError as exc:
            self.say(exc.message)
            return self.end(BuildState.FAILED, exc.message)
        self.say(f"build root {root.identity} at {root.path}")
        opt = Path(self.plan.env["RLAYER_WORK_DIR"]) / "root" / "opt"
        for path in (opt, *map(Path, self.plan.writable)):
            path.mkdir(parents=True, exist_ok=True)
        self.prefix = buildroot.bwrap_prefix(
            root.path,
            writable=[Path(p) for p in self.plan.writable],
            readable=[Path(p) for p in self.plan.readable],
            opt=opt,
        )
        for phase, commands in self.plan.phases:
            self.status.current_phase = phase
            phase_start = time.monotonic()
            for command in commands:
                if self.stopping:
                    return self.end(BuildState.FAILED, f"stopped during {phase}")
                self.status.current_command = command
                self.save()
                self.say(f"phase {phase}: {command}")
                outcome = self.run_command(command, deadline)
                if outcome is not None:
                    state, reason = outcome
                    self.say(reason)
                    return self.end(state, reason)
            self.status.phase_seconds[phase] = round(time.monotonic() - phase_start, 1)
            self.save()
        self.status.artifact_location = self.plan.artifact_location
        self.status.current_command = None
        self.say(f"build succeeded; artifacts in {self.plan.artifact_location}")
        return self.end(BuildState.SUCCEEDED, None)

    def run_command(self, command: str, deadline: float) -> tuple[BuildState, str] | None:
        # Its own process group, so a stop or a timeout reaches make, cc and R under it.
        self.child = subprocess.Popen(
            [*self.prefix, "sh", "-c", command],
            cwd=self.plan.cwd,
            env=self.plan.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.status.command_pgid = self.child.pid
        self.save()
        phase = self.status.current_phase
        while True:
            try:
                code = self.child.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    self.kill_command()
                    return BuildState.TIMED_OUT, (
                        f"timed out after {self.plan.timeout_s:.0f} s in {phase}: {command}"
                    )
        if self.stopping:
            return BuildState.FAILED, f"stopped during {phase}"
        if code != 0:
            return BuildState.FAILED, f"phase {phase}: `{command}` exited with status {code}"
        return None

    def kill_command(self) -> None:
        assert self.child is not None
        signal_group(self.child.pid, signal.SIGTERM)
        try:
            self.child.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            signal_group(self.child.pid, signal.SIGKILL)
            self.child.wait()

    def end(self, state: BuildState, reason: str | None) -> int:
        if reason and state is not BuildState.SUCCEEDED:
            tail = "\n".join(log_tail(self.build_dir / "build.log", 15))
            reason = f"{reason}\n{tail}"
        self.status.state = state
        self.status.reason = reason
        self.status.finished_at = utcnow()
        self.save()
        return 0 if state is BuildState.SUCCEEDED else 1


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m rlayer.builders.runner run BUILD_DIR", file=sys.stderr)
        return 2
    return _Runner(Path(argv[1])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
