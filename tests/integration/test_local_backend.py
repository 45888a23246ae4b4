"""LocalBuildBackend: buildspec phases as local processes, observable from anywhere.

The buildspec here is a small real one (real YAML, real sh commands) in a temporary source
tree, so each test takes a fraction of a second; the real buildspec runs in
tests/integration/test_build_layer.py.
"""

from __future__ import annotations

import os
import textwrap
import threading
import time
from pathlib import Path

import pytest

from chalicelib.builders.base import BuildProgress, BuildState
from chalicelib.errors import BuildStartError, NotFoundError
from chalicelib.models import BuildSpec
from chalicelib.settings import get_settings
from rlayer.builders import buildroot
from rlayer.builders.local import LocalBuildBackend

SPEC = BuildSpec(r_version="4.2.2", packages=["digest", "R6"])


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not this machine's cache: its prepared local sources would change what builds get.
    # The build root stays the machine's (made once, by whichever build needs it first).
    monkeypatch.setenv("RLAYER_BUILDROOT_DIR", str(buildroot.roots_dir()))
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path / "cache"))


def _source(tmp_path: Path, phases: dict[str, list[str]], variables: str = "") -> Path:
    root = tmp_path / "src"
    (root / "buildspec").mkdir(parents=True)
    (root / "runtime/bootstrap").mkdir(parents=True)
    (root / "runtime/bootstrap/bootstrap").write_text("#!/bin/sh\n")
    body = "version: 0.2\n"
    if variables:
        body += "env:\n  variables:\n" + textwrap.indent(variables, "    ") + "\n"
    body += "phases:\n"
    for phase, commands in phases.items():
        body += f"  {phase}:\n    commands:\n"
        body += "".join(f"      - {c!r}\n" for c in commands)
    (root / "buildspec/buildspec.yml").write_text(body)
    return root


def _backend(tmp_path: Path, source: Path, **kwargs: object) -> LocalBuildBackend:
    return LocalBuildBackend(
        get_settings(),
        work_root=tmp_path / "work",
        artifact_root=tmp_path / "artifacts",
        buildspec=source / "buildspec/buildspec.yml",
        source_root=source,
        **kwargs,  # type: ignore[arg-type]
    )


def _wait(
    backend: LocalBuildBackend, ref: str, until: BuildState | None = None, timeout: float = 20
) -> BuildProgress:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = backend.check_build(ref)
        if (until is None and progress.state is not BuildState.IN_PROGRESS) or (
            until is not None and progress.state is until
        ):
            return progress
        time.sleep(0.05)
    raise AssertionError(f"build {ref} still {backend.check_build(ref).state} after {timeout}s")


def _wait_for_file(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_phases_run_in_order_with_the_build_environment(tmp_path: Path) -> None:
    trace = "echo $0:$RLAYER_R_VERSION:$RLAYER_PACKAGES >> $RLAYER_WORK_DIR/trace"
    source = _source(
        tmp_path,
        {
            "post_build": [trace.replace("$0", "post")],
            "install": [trace.replace("$0", "install")],
            "build": [trace.replace("$0", "build1"), trace.replace("$0", "build2")],
            "pre_build": [trace.replace("$0", "pre")],
        },
    )
    backend = _backend(tmp_path, source)
    ref = backend.start_build("b-1", SPEC)
    progress = _wait(backend, ref)

    assert progress.state is BuildState.SUCCEEDED, progress.reason
    lines = (tmp_path / "work/b-1/work/trace").read_text().splitlines()
    assert lines == [f"{p}:4.2.2:R6 digest" for p in ("install", "pre", "build1", "build2", "post")]
    assert progress.artifact_location == f"{tmp_path}/artifacts/artifacts/b-1/"
    assert progress.log_url == (tmp_path / "work/b-1/build.log").as_uri()
    assert progress.reason is None


def test_the_build_sees_its_request_but_not_this_process_secrets(tmp_path: Path) -> None:
    dump = "env | sort > $RLAYER_WORK_DIR/env.txt"
    source = _source(
        tmp_path,
        {"build": [dump]},
        variables='RLAYER_CRAN_REPO: "https://default.example"\nEXTRA_DEFAULT: "yes"',
    )
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    backend = _backend(tmp_path, source)
    progress = _wait(backend, backend.start_build("b-env", SPEC))
    assert progress.state is BuildState.SUCCEEDED, progress.reason
    env = _env_of(tmp_path, "b-env")
    assert env["RLAYER_BUILD_ID"] == "b-env"
    assert env["RLAYER_ARCH"] == "x86_64"
    assert env["RLAYER_SPEC_HASH"] == SPEC.spec_hash
    # The build root binds this build's /opt image at /opt: the scripts write /opt directly.
    assert env["RLAYER_OPT_MODE"] == "direct"
    assert env["RLAYER_BUILD_OS"].startswith("debian-bullseye-")
    assert env["RLAYER_WORK_DIR"] == f"{tmp_path}/work/b-env/work"
    assert env["EXTRA_DEFAULT"] == "yes"  # buildspec default
    # The settings' repository overrides the buildspec's default, as a project's would.
    assert env["RLAYER_CRAN_REPO"] == get_settings().cran_repo
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "AWS_ACCESS_KEY_ID" not in env


def _env_of(tmp_path: Path, build_id: str) -> dict[str, str]:
    text = (tmp_path / f"work/{build_id}/work/env.txt").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_prepared_local_sources_serve_their_r_version_when_none_is_configured(
    tmp_path: Path,
) -> None:
    sources = tmp_path / "cache/sources"
    for repo in ("repo", "repo-4.2.2"):
        (sources / repo / "src/contrib").mkdir(parents=True)
        (sources / repo / "src/contrib/PACKAGES").write_text(
            "Package: digest\nVersion: 0.6.37\n\nPackage: R6\nVersion: 2.6.1\n"
        )
    (sources / "R-4.2.2.tar").write_bytes(b"tarball")
    (sources / "env").write_text(
        f"R_SOURCE={sources}/R-4.2.2.tar\nR_SOURCE_TEMPLATE={sources}/R-{{version}}.tar\n"
        f"RLAYER_CRAN_REPO=file://{sources}/repo\n"
        f"RLAYER_CRAN_REPO_TEMPLATE=file://{sources}/repo-{{version}}\n"
        'RLAYER_LOCAL_R_VERSION=4.2.2\nRLAYER_LOCAL_R_VERSIONS="4.2.2"\n'
        f"RLAYER_LOCAL_RELEASES=file://{sources}/releases.json\n"
    )
    source = _source(tmp_path, {"build": ["env | sort > $RLAYER_WORK_DIR/env.txt"]})
    backend = _backend(tmp_path, source)
    assert get_settings().r_source == ""
    _wait(backend, backend.start_build("b-local", SPEC))
    _wait(backend, backend.start_build("b-other", BuildSpec(r_version="4.4.1")))

    local = _env_of(tmp_path, "b-local")
    assert local["R_SOURCE"] == f"{sources}/R-4.2.2.tar"
    assert local["RLAYER_CRAN_REPO"] == f"file://{sources}/repo-4.2.2"
    # Another R version: R from CRAN; the packages still from the prepared repository
    # (nothing configured either way: each is chosen on its own).
    other = _env_of(tmp_path, "b-other")
    assert "R_SOURCE" not in other
    assert other["RLAYER_CRAN_REPO"] == f"file://{sources}/repo"


def test_the_build_runs_the_sources_as_they_were_at_start(tmp_path: Path) -> None:
    source = _source(tmp_path, {"build": ["cat runtime/bootstrap/bootstrap"]})
    backend = _backend(tmp_path, source)
    ref = backend.start_build("b-snap", SPEC)
    (source / "runtime/bootstrap/bootstrap").write_text("changed after start\n")
    _wait(backend, ref)
    assert (tmp_path / "work/b-snap/src/runtime/bootstrap/bootstrap").read_text() == "#!/bin/sh\n"


def test_status_is_readable_while_running_from_another_instance_and_thread(
    tmp_path: Path,
) -> None:
    # Inside the build's directory: the commands run in the build root, which sees only it.
    gate = tmp_path / "work/b-2/gate"
    source = _source(
        tmp_path,
        {
            "install": ["echo installed-ok"],
            "build": [f"echo building; while [ ! -e {gate} ]; do sleep 0.05; done"],
        },
    )
    started = time.monotonic()
    ref = _backend(tmp_path, source).start_build("b-2", SPEC)
    assert time.monotonic() - started < 5  # returns at once, the build goes on

    seen: list[BuildProgress] = []

    def poll() -> None:
        # A fresh backend object, as a separate task invocation would create.
        other = _backend(tmp_path, source)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            progress = other.check_build(ref)
            if progress.current_phase == "build" and "building" in progress.log_tail:
                seen.append(progress)
                return
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    poller.join()
    gate.touch()
    final = _wait(_backend(tmp_path, source), ref)

    assert seen, "the running build was never observed in its build phase"
    assert seen[0].state is BuildState.IN_PROGRESS
    assert "installed-ok" in seen[0].log_tail
    assert final.state is BuildState.SUCCEEDED


def test_a_failing_command_fails_the_build_with_its_step_and_log_tail(tmp_path: Path) -> None:
    source = _source(
        tmp_path,
        {
            "pre_build": ["echo prepared"],
            "build": ["echo 'Error: package digest failed to compile' >&2; exit 3", "echo never"],
            "post_build": ["touch $RLAYER_WORK_DIR/uploaded"],
        },
    )
    backend = _backend(tmp_path, source)
    progress = _wait(backend, backend.start_build("b-3", SPEC))

    assert progress.state is BuildState.FAILED
    assert progress.current_phase == "build"
    assert progress.reason is not None
    assert "phase build: `echo" in progress.reason and "exited with status 3" in progress.reason
    assert "Error: package digest failed to compile" in progress.reason
    assert "Error: package digest failed to compile" in progress.log_tail
    assert "never" not in progress.log_tail
    assert not (tmp_path / "work/b-3/work/uploaded").exists()
    assert progress.artifact_location is None


def test_stop_build_kills_the_running_commands_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "work/b-4/sleeper.pid"
    # A grandchild (as make's compilers are): it must die with the build.
    source = _source(tmp_path, {"build": [f"sleep 300 & echo $! > {pidfile}; wait"]})
    backend = _backend(tmp_path, source)
    ref = backend.start_build("b-4", SPEC)
    _wait_for_file(pidfile)
    sleeper = int(pidfile.read_text())
    assert _alive(sleeper)

    backend.stop_build(ref)
    progress = backend.check_build(ref)

    assert progress.state is BuildState.FAILED
    assert progress.reason is not None and "stopped during build" in progress.reason
    deadline = time.monotonic() + 5
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper)
    backend.stop_build(ref)  # stopping a finished build is a no-op
    assert backend.check_build(ref).state is BuildState.FAILED


def test_a_build_over_its_time_limit_times_out(tmp_path: Path) -> None:
    source = _source(tmp_path, {"build": ["sleep 30"]})
    backend = _backend(tmp_path, source, timeout_s=1.0)
    progress = _wait(backend, backend.start_build("b-5", SPEC))
    assert progress.state is BuildState.TIMED_OUT
    assert progress.reason is not None and "timed out" in progress.reason


@pytest.mark.parametrize(
    ("runner_err", "reason"),
    [
        # Killed from outside: nothing printed.
        ("", "the build runner exited without a result"),
        # What a Python that dies of an exception leaves on its stderr.
        (
            "Traceback (most recent call last):\n  ...\nMemoryError: out of memory\n\n",
            "the build runner exited without a result; its last output: MemoryError: out of memory",
        ),
    ],
)
def test_a_runner_that_dies_without_a_verdict_is_reported_failed(
    tmp_path: Path, runner_err: str, reason: str
) -> None:
    pidfile = tmp_path / "work/b-6/cmd.pid"
    source = _source(tmp_path, {"build": [f"echo $$ > {pidfile}; sleep 300"]})
    backend = _backend(tmp_path, source)
    ref = backend.start_build("b-6", SPEC)
    _wait_for_file(pidfile)
    runner = int((tmp_path / "work/b-6/runner.pid").read_text())
    # The command's process group (bubblewrap's, which runs the build root's shell).
    group = os.getpgid(int(pidfile.read_text()))
    try:
        os.kill(runner, 9)
        if runner_err:
            (tmp_path / "work/b-6/runner.err").write_text(runner_err)
        progress = _wait(backend, ref)
        assert progress.state is BuildState.FAILED
        assert progress.reason == reason
    finally:
        os.killpg(group, 9)


def test_cleanup_keeps_the_log_and_drops_the_scratch_space(tmp_path: Path) -> None:
    source = _source(tmp_path, {"build": ["mkdir -p $RLAYER_WORK_DIR/root/opt/R; echo done"]})
    backend = _backend(tmp_path, source)
    ref = backend.start_build("b-7", SPEC)
    _wait(backend, ref)
    backend.cleanup(ref)
    assert not (tmp_path / "work/b-7/work").exists()
    assert "done" in backend.check_build(ref).log_tail


def test_the_same_build_id_cannot_start_twice(tmp_path: Path) -> None:
    source = _source(tmp_path, {"build": ["true"]})
    backend = _backend(tmp_path, source)
    _wait(backend, backend.start_build("b-8", SPEC))
    with pytest.raises(BuildStartError):
        backend.start_build("b-8", SPEC)


@pytest.mark.parametrize("ref", ["nope", "../etc", ""])
def test_unknown_references_are_not_found(tmp_path: Path, ref: str) -> None:
    backend = _backend(tmp_path, _source(tmp_path, {"build": ["true"]}))
    with pytest.raises(NotFoundError):
        backend.check_build(ref)
