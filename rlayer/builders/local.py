"""LocalBuildBackend: the buildspec phases as local processes, for one machine.

``buildspec/buildspec.yml`` is parsed (PyYAML) and its phases' commands run in order, each
with ``sh -c``, in a directory per build::

    <work root>/<build id>/
        src/          snapshot of buildspec/ and runtime/ (what CodeBuild checks out)
        work/         RLAYER_WORK_DIR of the scripts (the /opt image, zips, state)
        plan.json     what the runner executes: phases, commands, environment
        status.json   state, current phase and command, reason; rewritten atomically
        build.log     every command's output

``start_build`` spawns a runner process (``python -m rlayer.builders.runner run DIR``) in
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

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from chalicelib.builders import register_backend
from chalicelib.builders.base import (
    BUILD_SOURCE_DIRS,
    BUILD_SOURCE_FILES,
    BuildProgress,
    BuildState,
    artifact_prefix,
    build_environment,
    system_packages,
)
from chalicelib.errors import BuildStartError, NotFoundError, RequestInvalidError
from chalicelib.models import BuildSpec, utcnow
from chalicelib.settings import Settings, get_settings
from rlayer.builders import buildroot, toolchain
from rlayer.builders.buildspec import BUILDSPEC, Buildspec
from rlayer.builders.runner import (
    RUNNER_MODULE,
    STOP_GRACE_S,
    LocalBuildStatus,
    Plan,
    is_runner,
    log_tail,
    signal_group,
    signal_pid,
    write_json_atomic,
)
from rlayer.builders.sources import REPO_ROOT, cache_dir, local_sources

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
BUILD_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


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
        # An R this root cannot compile is refused before anything is made (the compile
        # step checks the same table inside the root).
        why = toolchain.refusal(
            spec.r_version, buildroot.TOOLCHAIN, buildroot.ROOT_NAME, toolchain.read_table()
        )
        if why is not None:
            raise RequestInvalidError(f"r_version: {why}", field="r_version")
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
            write_json_atomic(build_dir / "plan.json", plan.model_dump_json(indent=2))
            write_json_atomic(build_dir / "status.json", LocalBuildStatus().model_dump_json())
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
        write_json_atomic(build_dir / "runner.pid", str(runner.pid))
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
            last = [line for line in log_tail(err, lines=5) if line.strip()]
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
            log_tail=log_tail(log),
            current_phase=status.current_phase,
        )

    def stop_build(self, build_ref: str) -> None:
        status = self.read_status(build_ref)
        runner = self._runner_pid(build_ref)
        if status.state is not BuildState.IN_PROGRESS or runner is None:
            return
        # The runner marks the build stopped; the command's group is signalled directly too
        # in case the runner is wedged.
        signal_pid(runner, signal.SIGTERM)
        if status.command_pgid:
            signal_group(status.command_pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and self._runner_alive(build_ref):
            time.sleep(0.1)
        if self._runner_alive(build_ref):
            latest = self.read_status(build_ref)
            if latest.command_pgid:
                signal_group(latest.command_pgid, signal.SIGKILL)
            signal_pid(runner, signal.SIGKILL)
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
        # Each of the two independently: what is configured, else what `make local-sources`
        # prepared (this machine is offline: that is what they are for), else CRAN.
        if prepared is not None:
            if not r_source and prepared.source_for(spec.r_version):
                r_source = prepared.r_source_template
            if "cran_repo" not in self.settings.model_fields_set:
                cran_repo = prepared.repo_for(spec.r_version)
        # One setting for every version: the local stack's R-{version}.tar, repo-{version}.
        r_source = r_source.replace("{version}", spec.r_version)
        cran_repo = cran_repo.replace("{version}", spec.r_version)
        env.update(
            build_environment(
                build_id,
                spec,
                artifact_uri=artifact_location,
                r_source=r_source,
                cran_repo=cran_repo,
                # The build root is Debian: apt's names (a root per package list).
                system_packages=system_packages(spec, cran_repo, "apt"),
            )
        )
        env["RLAYER_WORK_DIR"] = str(build_dir / "work")
        # The build root binds this build's /opt image at /opt (see rlayer.builders.runner).
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
        write_json_atomic(self.build_dir(build_ref) / "status.json", status.model_dump_json())
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


register_backend("local", LocalBuildBackend)
