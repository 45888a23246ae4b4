"""The `rlayer` CLI against the app served over real HTTP (chalice.local), on moto.

The state machine here is idle; a small fake pipeline thread moves records forward the way
the task functions do, so the CLI's waiting, rendering and exit statuses are exercised.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.aws.store import Store
from chalicelib.models import BuildStatus, CanaryResult, ErrorInfo, LayerRef
from chalicelib.observability import logger
from rlayer.cli import main
from rlayer.local.http_server import ApiServer

ACCOUNT = "123456789012"


@pytest.fixture
def api(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from app import app

    # The app logs and emits metrics (JSON, to stdout) in this process too: keep it quiet,
    # so what is asserted is the CLI's own output.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    level = logger.log_level
    logger.setLevel("WARNING")
    server = ApiServer(app, port=0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        logger.setLevel(level)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def layer(kind: str, name: str, version: int = 1) -> dict[str, Any]:
    return LayerRef(
        kind=kind,  # type: ignore[arg-type]
        name=name,
        arn=f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{name}:{version}",
        version=version,
        sha256="ab" * 32,
        zipped_bytes=13_500_000,
        unzipped_bytes=20_100_000,
    ).model_dump(mode="json")


def fake_pipeline(store: Store, *, fail: bool = False) -> Callable[[str], threading.Thread]:
    """Start a thread that walks a build through its steps as the state machine would."""

    def walk(build_id: str) -> None:
        record = store.get_build(build_id)
        steps = [BuildStatus.BUILDING, BuildStatus.VALIDATING]
        if not fail:
            steps += [BuildStatus.PUBLISHING, BuildStatus.TESTING]
        for status in steps:
            time.sleep(0.15)
            store.transition(build_id, status)
        time.sleep(0.15)
        if fail:
            error = ErrorInfo(
                step="CheckBuild",
                error_type="BuildFailedError",
                message="ERROR: dependency 'nosuchpkg' is not available",
            )
            store.transition(build_id, BuildStatus.FAILED, {"error": error.model_dump()})
            return
        spec = record.spec
        canary = CanaryResult(
            r_version=spec.r_version, packages={"jsonlite": "1.8.4"}, init_ms=310, duration_ms=12
        )
        store.transition(
            build_id,
            BuildStatus.SUCCEEDED,
            {
                "layers": [
                    layer("runtime", spec.runtime_layer_name),
                    layer("packages", spec.packages_layer_name),
                ],
                "canary": canary.model_dump(),
            },
        )

    def start(build_id: str) -> threading.Thread:
        thread = threading.Thread(target=walk, args=(build_id,), daemon=True)
        thread.start()
        return thread

    return start


def wait_for_build(store: Store, before: set[str] | None = None) -> str:
    """The id of the build the CLI just created (it polls; the fake starts on it)."""
    for _ in range(200):
        records, _ = store.list_builds(status=None, limit=10, token=None)
        fresh = [r.build_id for r in records if r.build_id not in (before or set())]
        if fresh:
            return fresh[0]
        time.sleep(0.02)
    raise AssertionError("the CLI created no build")


def build_in_background(api: str, *argv: str) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def target() -> None:
        result["status"] = main(["build", *argv, "--api", api, "--interval", "0.05"])

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def test_build_follows_the_record_to_success_and_prints_the_layers(
    api: str, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    thread, result = build_in_background(api, "4.2.2", "jsonlite")
    build_id = wait_for_build(store)
    fake_pipeline(store)(build_id).join()
    thread.join(timeout=20)
    out, _ = capsys.readouterr()
    assert result["status"] == 0
    record = store.get_build(build_id)
    assert f"build {build_id} queued: {api}/builds/{build_id}" in out
    # One line per step as it happens (not a terminal: no live panel).
    for step in ("QUEUED", "BUILDING", "VALIDATING", "PUBLISHING", "TESTING", "SUCCEEDED"):
        assert f"] {step}" in out
    for ref in record.layers:
        assert ref.arn in out.splitlines()[out.splitlines().index(f"    {ref.arn}")]
    assert "canary: R 4.2.2; jsonlite 1.8.4 (init 310 ms, invoke 12 ms)" in out
    assert "13.5 MB zipped, 20.1 MB unzipped" in out

    # The same spec again answers with that build, already final: no new record.
    status, out, _ = run(capsys, "build", "4.2.2", "jsonlite", "--api", api)
    assert status == 0
    assert f"an identical build answers this request: {build_id} (SUCCEEDED)" in out
    assert len(store.list_builds(status=None, limit=10, token=None)[0]) == 1


def test_a_failed_build_exits_non_zero_with_the_reason(
    api: str, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    thread, result = build_in_background(api, "4.2.2", "nosuchpkg")
    build_id = wait_for_build(store)
    fake_pipeline(store, fail=True)(build_id).join()
    thread.join(timeout=20)
    out, _ = capsys.readouterr()
    assert result["status"] == 1
    assert "FAILED" in out
    assert "failed at CheckBuild: BuildFailedError" in out
    assert "dependency 'nosuchpkg' is not available" in out

    status, out, _ = run(capsys, "status", build_id, "--api", api)
    assert status == 1
    assert f"build {build_id} FAILED" in out


def test_no_wait_then_status_list_and_layers(
    api: str, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(
        capsys, "build", "4.2.2", "digest", "jsonlite", "--no-wait", "--json", "--api", api
    )
    assert status == 0
    submitted = json.loads(out)
    assert submitted["status"] == "QUEUED" and submitted["created"] is True
    build_id = submitted["build_id"]

    status, out, _ = run(capsys, "status", build_id, "--json", "--api", api)
    assert status == 0
    assert json.loads(out)["spec"]["packages"] == [
        {"name": "digest", "version": None},
        {"name": "jsonlite", "version": None},
    ]

    status, out, _ = run(capsys, "layers", "--api", api)
    assert (status, out.strip()) == (0, "no proven layers yet")

    fake_pipeline(store)(build_id).join()
    status, out, _ = run(capsys, "list", "--api", api)
    assert status == 0
    assert build_id in out and "SUCCEEDED" in out and "digest jsonlite" in out

    status, out, _ = run(capsys, "layers", "--r-version", "4.2.2", "--api", api)
    assert status == 0
    record = store.get_build(build_id)
    for ref in record.layers:
        assert f"  {ref.arn}" in out.splitlines()
    status, out, _ = run(capsys, "layers", "--r-version", "4.3.0", "--json", "--api", api)
    assert json.loads(out) == {"layers": []}


def test_list_pages_with_all(api: str, store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    for pkg in ("jsonlite", "digest", "R6"):
        assert run(capsys, "build", "4.2.2", pkg, "--no-wait", "--api", api)[0] == 0
    _, out, _ = run(capsys, "list", "--limit", "2", "--json", "--api", api)
    page = json.loads(out)
    assert len(page["builds"]) == 2 and page["next"]
    _, out, _ = run(capsys, "list", "--limit", "2", "--all", "--json", "--api", api)
    assert len(json.loads(out)["builds"]) == 3


def test_errors_are_one_line_on_stderr(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "build", "4.2", "jsonlite", "--api", api)
    assert status == 1 and out == ""
    assert err.startswith("error: RequestInvalidError: r_version: must be an R version")

    status, _, err = run(capsys, "status", "20990101T000000-00000000", "--api", api)
    assert status == 1
    assert "error: NotFoundError: no build with id" in err

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    status, _, err = run(capsys, "list", "--api", closed)
    assert status == 1
    assert f"error: UpstreamError: cannot reach the rlayer API at {closed}/builds" in err
    assert "(is `rlayer serve` running?)" in err


def test_build_asks_for_a_backend_and_names_one_the_stage_does_not_offer(
    api: str, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "build", "4.2.2", "jsonlite", "--backend", "ec2", "--api", api)
    assert status == 1
    assert err.startswith("error: RequestInvalidError: backend: this stage builds on codebuild;")
    assert "'ec2' is not among them" in err
    status, out, _ = run(
        capsys,
        "build",
        "4.2.2",
        "jsonlite",
        "--backend",
        "codebuild",
        "--no-wait",
        "--json",
        "--api",
        api,
    )
    assert status == 0
    assert store.get_build(json.loads(out)["build_id"]).backend == "codebuild"
