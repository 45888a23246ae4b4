"""LocalBuildBackend: the buildspec phases as local processes, for one machine.

``buildspec/buildspec.yml`` is parsed (PyYAML) and its phases' commands run in order, each
with ``sh -c``, in a directory per build::

    <work root>/<build id>/
        src/          snapshot of buildspec/ and runtime/ (what CodeBuild checks out)
        work/         RLAYER_WORK_DIR of the scripts (the /opt image, zips, state)
        plan.json     what the runner executes: phases, commands, environment
        status.json   state, current phase and command, reason; rewritten atomically
        build.log     every command's output

``start_build`` spawns a runner process (``python -m rlayer.builders.local run DIR``) in
its own session and returns at once; everything about a build is on disk, so any thread or
process (the pipeline polls from its task functions) can check or stop it. ``stop_build``
signals the runner and the running command's process group (make, the compilers, R).

Every command runs inside the build root (``rlayer.builders.buildroot``: Debian 11, no
newer than Lambda's OS), made by the runner before the first phase when it does not exist
yet; this build's directory and the cache are bound at their own paths, its /opt image at
/opt, so the scripts run in ``direct`` /opt mode exactly as on CodeBuild.

R's source and the package repository come from settings (``R_SOURCE``, ``CRAN_REPO``);
with no R source configured, the sources ``make local-sources`` prepared are used for the
R version they hold, because a machine that prepared them is one without CRAN.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.builders import register_backend
from chalicelib.builders.base import (
    BUILD_SOURCE_DIRS,
    BUILD_SOURCE_FILES,
    BuildProgress,
    BuildState,
    artifact_prefix,
    build_environment,
)
from chalicelib.errors import BuildStartError, ConfigurationError, NotFoundError
from chalicelib.models import BuildSpec, utcnow
from chalicelib.settings import Settings, get_settings
from rlayer.builders import buildroot
from rlayer.builders.sources import REPO_ROOT, cache_dir, local_sources

BUILDSPEC = REPO_ROOT / "buildspec" / "buildspec.yml"
# What a build gets from this process's environment; nothing else (no AWS credentials).
PASSED_ENV = (
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "USER",
    "LOGNAME",
    "RLAYER_CACHE_DIR",
    "XDG_CACHE_HOME",
    "RLAYER_JOBS",
)
PHASE_ORDER = ("install", "pre_build", "build", "post_build")

RUNNER_MODULE = "rlayer.builders.local"
BUILD_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LOG_TAIL_LINES = 40
STOP_GRACE_S = 10.0


class BuildspecPhase(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    commands: list[str] = Field(default_factory=list)
    on_failure: str = Field(default="ABORT", alias="on-failure")


class Buildspec(BaseModel):
    """The part of CodeBuild's buildspec format the local backend executes."""

    model_config = ConfigDict(extra="allow")

    version: float
    env: dict[str, Any] = Field(default_factory=dict)
    phases: dict[str, BuildspecPhase]

    @classmethod
    def load(cls, path: Path = BUILDSPEC) -> Buildspec:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from exc
        return cls.model_validate(data)

    def default_variables(self) -> dict[str, str]:
        variables = self.env.get("variables") or {}
        return {str(k): str(v) for k, v in variables.items()}

    def ordered_phases(self) -> list[tuple[str, list[str]]]:
        unknown = set(self.phases) - set(PHASE_ORDER)
        if unknown:
            raise ConfigurationError(f"buildspec has unknown phases: {sorted(unknown)}")
        return [(p, self.phases[p].commands) for p in PHASE_ORDER if p in self.phases]


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


def _write_json_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(data)
    tmp.replace(path)


def _log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
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


class LocalBuildBackend:
    """BuildBackend running buildspec phases on this machine (see the module docstring)."""

    name = "local"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        work_root: Path | None = None,
        artifact_root: Path | None = None,
        buildspec: Path = BUILDSPEC,
        source_root: Path = REPO_ROOT,
        timeout_s: float = 3 * 3600,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        root = work_root or (
            Path(self.settings.local_work_dir) if self.settings.local_work_dir else None
        )
        self.work_root = (root or cache_dir() / "work").resolve()
        self.artifact_root = (artifact_root or self.work_root / "artifacts-store").resolve()
        self.buildspec = buildspec
        self.source_root = source_root
        self.timeout_s = timeout_s
        self.extra_env = dict(extra_env or {})

    # -- paths -------------------------------------------------------------------------
    def build_dir(self, build_ref: str) -> Path:
        if not BUILD_REF_RE.match(build_ref):
            raise NotFoundError(f"not a local build reference: {build_ref!r}")
        return self.work_root / build_ref

    def log_path(self, build_ref: str) -> Path:
        return self.build_dir(build_ref) / "build.log"

    def read_status(self, build_ref: str) -> LocalBuildStatus:
        path = self.build_dir(build_ref) / "status.json"
        try:
            return LocalBuildStatus.model_validate_json(path.read_text())
        except FileNotFoundError as exc:
            raise NotFoundError(f"no local build {build_ref!r}") from exc

    # -- BuildBackend ------------------------------------------------------------------
    def start_build(self, build_id: str, spec: BuildSpec) -> str:
        build_dir = self.build_dir(build_id)
        if build_dir.exists():
            raise BuildStartError(f"local build {build_id} already exists at {build_dir}")
        artifact_location = (self.artifact_root / artifact_prefix(build_id)).as_posix() + "/"
        env = self._environment(build_id, spec, build_dir, artifact_location)
        buildspec = Buildspec.load(self.buildspec)
        extra = tuple(env.get("RLAYER_SYSTEM_PACKAGES", "").split())
        env["RLAYER_BUILD_OS"] = buildroot.identity(extra)
        plan = Plan(
            build_id=build_id,
            phases=buildspec.ordered_phases(),
            env={**buildspec.default_variables(), **env},
            cwd=str(build_dir / "src"),
            timeout_s=self.timeout_s,
            artifact_location=artifact_location,
            root_extra=extra,
            writable=[str(build_dir), str(self.artifact_root), env["RLAYER_CACHE_DIR"]],
            readable=_local_inputs(env),
        )
        try:
            build_dir.mkdir(parents=True)
            self._snapshot_sources(build_dir / "src")
            (build_dir / "work").mkdir()
            _write_json_atomic(build_dir / "plan.json", plan.model_dump_json(indent=2))
            _write_json_atomic(build_dir / "status.json", LocalBuildStatus().model_dump_json())
            (build_dir / "build.log").touch()
            with open(build_dir / "runner.err", "wb") as runner_err:
                runner = subprocess.Popen(
                    [sys.executable, "-m", RUNNER_MODULE, "run", str(build_dir)],
                    cwd=str(REPO_ROOT),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=runner_err,
                    start_new_session=True,
                )
        except OSError as exc:
            raise BuildStartError(f"cannot start local build {build_id}: {exc}") from exc
        _write_json_atomic(build_dir / "runner.pid", str(runner.pid))
        # Reap the runner when it ends (else it lingers as a zombie of this process).
        threading.Thread(target=runner.wait, daemon=True).start()
        return build_id

    def check_build(self, build_ref: str) -> BuildProgress:
        status = self.read_status(build_ref)
        log = self.log_path(build_ref)
        if status.state is BuildState.IN_PROGRESS and not self._runner_alive(build_ref):
            # The runner died without a verdict (killed from outside, machine restart).
            reason = "the build runner exited without a result"
            # Whatever it printed on the way out (a traceback's last line) says why.
            err = self.build_dir(build_ref) / "runner.err"
            last = [line for line in _log_tail(err, lines=5) if line.strip()]
            status = self._finish(
                build_ref,
                BuildState.FAILED,
                f"{reason}; its last output: {last[-1]}" if last else reason,
            )
        return BuildProgress(
            state=status.state,
            artifact_location=status.artifact_location,
            log_url=log.as_uri(),
            reason=status.reason,
            log_tail=_log_tail(log),
            current_phase=status.current_phase,
        )

    def stop_build(self, build_ref: str) -> None:
        status = self.read_status(build_ref)
        runner = self._runner_pid(build_ref)
        if status.state is not BuildState.IN_PROGRESS or runner is None:
            return
        # The runner marks the build stopped; the command's group is signalled directly too
        # in case the runner is wedged.
        _signal(runner, signal.SIGTERM)
        if status.command_pgid:
            _signal_group(status.command_pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and self._runner_alive(build_ref):
            time.sleep(0.1)
        if self._runner_alive(build_ref):
            latest = self.read_status(build_ref)
            if latest.command_pgid:
                _signal_group(latest.command_pgid, signal.SIGKILL)
            _signal(runner, signal.SIGKILL)
        phase = status.current_phase or "start"
        self._finish(build_ref, BuildState.FAILED, f"stopped during {phase}")

    def cleanup(self, build_ref: str) -> None:
        """Remove a finished build's scratch space (its /opt image, sources, objects);
        the log, status and artifacts stay."""
        if self.read_status(build_ref).state is BuildState.IN_PROGRESS:
            return
        shutil.rmtree(self.build_dir(build_ref) / "work", ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------
    def _environment(
        self, build_id: str, spec: BuildSpec, build_dir: Path, artifact_location: str
    ) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env.setdefault("RLAYER_CACHE_DIR", str(cache_dir()))
        r_source, cran_repo = self.settings.r_source, self.settings.cran_repo
        prepared = local_sources()
        if not r_source and prepared is not None and prepared.r_version == spec.r_version:
            # No R source configured, and `make local-sources` prepared this very version:
            # this machine is offline (that is what the local sources are for).
            r_source, cran_repo = prepared.r_source, prepared.cran_repo
        env.update(
            build_environment(
                build_id,
                spec,
                artifact_uri=artifact_location,
                r_source=r_source,
                cran_repo=cran_repo,
            )
        )
        env["RLAYER_WORK_DIR"] = str(build_dir / "work")
        # The build root binds this build's /opt image at /opt (see _Runner.argv).
        env["RLAYER_OPT_MODE"] = "direct"
        env.update(self.extra_env)
        return env

    def _snapshot_sources(self, dest: Path) -> None:
        # The build runs the scripts as they were when it started, as CodeBuild would.
        for part in BUILD_SOURCE_DIRS:
            src = self.source_root / part
            if src.is_dir():
                shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        for part in BUILD_SOURCE_FILES:
            if (self.source_root / part).is_file():
                (dest / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.source_root / part, dest / part)

    def _runner_pid(self, build_ref: str) -> int | None:
        try:
            return int((self.build_dir(build_ref) / "runner.pid").read_text())
        except (OSError, ValueError):
            return None

    def _runner_alive(self, build_ref: str) -> bool:
        pid = self._runner_pid(build_ref)
        if pid is None:
            return True  # not yet recorded: start_build is still spawning it
        # An exited runner not yet reaped by our waiter thread is a zombie: gone too. A live
        # pid running something else (reused after a restart) is not our runner either.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, IndexError):
            return False
        return is_runner(state, cmdline)

    def _finish(self, build_ref: str, state: BuildState, reason: str | None) -> LocalBuildStatus:
        """Record a verdict unless the runner recorded one first."""
        status = self.read_status(build_ref)
        if status.state is not BuildState.IN_PROGRESS:
            return status
        status.state = state
        status.reason = reason
        status.finished_at = utcnow()
        _write_json_atomic(self.build_dir(build_ref) / "status.json", status.model_dump_json())
        return status


def _local_inputs(env: dict[str, str]) -> list[str]:
    """Local R source and repository paths outside the cache: bound read-only."""
    cache = env["RLAYER_CACHE_DIR"]
    paths = []
    for key in ("R_SOURCE", "RLAYER_CRAN_REPO"):
        value = env.get(key, "")
        path = value.removeprefix("file://")
        outside = path.startswith("/") and not path.startswith(cache.rstrip("/") + "/")
        if outside and Path(path).exists():
            paths.append(path)
    return paths


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# -- the runner (a separate process per build) --------------------------------------------
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
        _write_json_atomic(self.build_dir / "status.json", self.status.model_dump_json())

    def say(self, text: str) -> None:
        self.log.write(f"[local-build {utcnow()}] {text}\n".encode())

    def on_term(self, signum: int, _frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            _signal_group(self.child.pid, signal.SIGTERM)

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
        _signal_group(self.child.pid, signal.SIGTERM)
        try:
            self.child.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(self.child.pid, signal.SIGKILL)
            self.child.wait()

    def end(self, state: BuildState, reason: str | None) -> int:
        if reason and state is not BuildState.SUCCEEDED:
            tail = "\n".join(_log_tail(self.build_dir / "build.log", 15))
            reason = f"{reason}\n{tail}"
        self.status.state = state
        self.status.reason = reason
        self.status.finished_at = utcnow()
        self.save()
        return 0 if state is BuildState.SUCCEEDED else 1


register_backend("local", LocalBuildBackend)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m rlayer.builders.local run BUILD_DIR", file=sys.stderr)
        return 2
    return _Runner(Path(argv[1])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
