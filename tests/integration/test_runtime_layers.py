"""The bootstrap with layers at /opt (bubblewrap), as zips and directories, and the canary."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rlayer.local.sandbox import SandboxMode
from tests.layerkit import HOST_R_VERSION

from .conftest import REPO, HandlerWriter, SessionFactory

pytestmark = pytest.mark.integration

ENV_R = """
handler <- function(event) list(
  task_root = Sys.getenv("LAMBDA_TASK_ROOT"),
  cwd = getwd(),
  ld_library_path = strsplit(Sys.getenv("LD_LIBRARY_PATH"), ":")[[1]],
  lib_paths = .libPaths(),
  r_home = R.home(),
  marker = if (file.exists("/opt/etc/marker")) readLines("/opt/etc/marker") else NULL,
  search = search(),
  jit = Sys.getenv("R_ENABLE_JIT")
)
"""


def zip_dir(src: Path, dest: Path) -> Path:
    """A layer zip the way the documents build them: `zip -r -y` (symlinks kept)."""
    subprocess.run(["zip", "-q", "-r", "-y", str(dest), "."], cwd=src, check=True)
    return dest


def test_runtime_from_zip_layers_with_r_from_the_layer(
    runtime_layer: Path,
    r_layer: Path,
    write_handler: HandlerWriter,
    make_session: SessionFactory,
    tmp_path: Path,
) -> None:
    runtime_zip = zip_dir(runtime_layer, tmp_path / "runtime.zip")
    r_zip = zip_dir(r_layer, tmp_path / "r.zip")
    root = write_handler("env.R", ENV_R)
    session = make_session(layers=[runtime_zip, r_zip], task_root=root, handler="env.handler")
    assert session.sandbox.mode is SandboxMode.BWRAP
    result = session.invoke(b"{}")
    assert result.ok, result.payload
    info = result.json_payload()
    assert info["task_root"] == "/var/task" == info["cwd"]
    assert "/opt/lib" in info["ld_library_path"]
    # Only base is attached, and the runtime's own environment (lambda_log, event helpers).
    assert info["search"] == [".GlobalEnv", "rlayer", "Autoloads", "package:base"]
    assert info["jit"] == "0"
    # The bootstrap exec'd R's binary directly (one process, no front-end script).
    pid = session.runtime_pid
    assert pid is not None
    exe = [os.readlink(f"/proc/{p}/exe") for p in _tree(pid)]
    assert exe[-1].endswith("/bin/exec/R")


FEATURES_R = """
handler <- function(event, context, stream) {
  message("serving ", event$n)
  if (isTRUE(event$stream)) {
    stream$write(paste0(context$aws_request_id, ";"))
    return(invisible())
  }
  Sys.sleep(0.5)
  list(pid = Sys.getpid(), started = event$n, sqs = event_kind(list(Records = list(
    list(eventSource = "aws:sqs")))))
}
"""


def test_the_layers_r_runs_workers_streams_and_json_logs(
    runtime_layer: Path,
    r_layer: Path,
    write_handler: HandlerWriter,
    make_session: SessionFactory,
) -> None:
    """What the newer features need of R (parallel's fork, sockets, the helpers) is in the
    runtime layer's R, as built and pruned."""
    root = write_handler("feat.R", FEATURES_R)
    lines: list[str] = []
    session = make_session(
        layers=[runtime_layer, r_layer],
        task_root=root,
        handler="feat.handler",
        max_concurrency=2,
        memory_mb=4096,
        timeout_s=10,
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON"},
        log_sink=lines.append,
    )
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda n: session.invoke(json.dumps({"n": n}).encode()), [1, 2]))
    assert all(r.ok for r in results), [r.payload for r in results]
    bodies = [r.json_payload() for r in results]
    assert len({b["pid"] for b in bodies}) == 2
    assert {b["sqs"] for b in bodies} == {"sqs"}
    streamed = session.invoke(b'{"n": 3, "stream": true}')
    assert streamed.streamed and streamed.payload == f"{streamed.request_id};".encode()
    logged = {json.loads(line)["requestId"] for line in lines if '"serving' in line}
    assert logged == {r.request_id for r in [*results, streamed]}


def _tree(pid: int) -> list[int]:
    found = [pid]
    for p in found:
        found.extend(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
    return found


def test_packages_layer_comes_first_in_the_library_path(
    runtime_layer: Path,
    r_layer: Path,
    write_handler: HandlerWriter,
    make_session: SessionFactory,
    tmp_path: Path,
) -> None:
    packages = tmp_path / "packages-layer"
    library = packages / "packages" / "library"
    library.mkdir(parents=True)
    digest = Path(
        subprocess.run(
            ["Rscript", "-e", "cat(find.package('digest'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    shutil.copytree(digest, library / "digest", symlinks=True)
    root = write_handler(
        "main.R",
        "handler <- function(event) list(lib = .libPaths()[1], "
        "digest = dirname(find.package('digest')))\n",
    )
    session = make_session(
        layers=[runtime_layer, r_layer, packages], task_root=root, handler="main.handler"
    )
    assert session.invoke(b"{}").json_payload() == {
        "lib": "/opt/packages/library",
        "digest": "/opt/packages/library",
    }


def test_later_layers_overwrite_earlier_ones(
    runtime_layer: Path,
    r_layer: Path,
    write_handler: HandlerWriter,
    make_session: SessionFactory,
    tmp_path: Path,
) -> None:
    layers = []
    for name in ("first", "second"):
        layer = tmp_path / name
        (layer / "etc").mkdir(parents=True)
        (layer / "etc" / "marker").write_text(name + "\n")
        layers.append(zip_dir(layer, tmp_path / f"{name}.zip"))
    root = write_handler("env.R", ENV_R)
    session = make_session(
        layers=[runtime_layer, r_layer, *layers], task_root=root, handler="env.handler"
    )
    assert session.invoke(b"{}").json_payload()["marker"] == "second"


def test_no_bootstrap_is_an_invalid_entrypoint(
    write_handler: HandlerWriter, make_session: SessionFactory, tmp_path: Path
) -> None:
    empty = tmp_path / "no-bootstrap"
    (empty / "lib").mkdir(parents=True)
    root = write_handler("main.R", "handler <- function(event) 1\n")
    result = make_session(layers=[empty], task_root=root, handler="main.handler").invoke(b"{}")
    assert result.json_payload()["errorType"] == "Runtime.InvalidEntrypoint"
    assert result.function_error == "Unhandled"


def test_host_mode_runs_without_a_sandbox(
    write_handler: HandlerWriter, make_session: SessionFactory, task_root: Path
) -> None:
    write_handler("env.R", ENV_R)
    session = make_session(
        task_root=task_root, handler="env.handler", sandbox_mode=SandboxMode.HOST
    )
    info = session.invoke(b"{}").json_payload()
    assert info["task_root"] == str(task_root.resolve()) == info["cwd"]


CANARY_EVENT = {"expected_r_version": "", "packages": ["jsonlite", "digest"]}


def _r_version() -> str:
    return HOST_R_VERSION  # the r_layer fixture's R


def test_canary_reports_versions_packages_result_and_timings(
    runtime_layer: Path, r_layer: Path, digest_layer: Path, make_session: SessionFactory
) -> None:
    version = _r_version()
    session = make_session(
        layers=[runtime_layer, r_layer, digest_layer],
        task_root=REPO / "runtime" / "canary",
        handler="canary.handler",
        timeout_s=30,
        memory_mb=512,
    )
    result = session.invoke(json.dumps({**CANARY_EVENT, "expected_r_version": version}).encode())
    assert result.ok, result.payload
    body = result.json_payload()
    assert body["r_version"] == version
    assert set(body["packages"]) == {"jsonlite", "digest"}
    assert body["failed"] == {}
    assert body["result"]["solve"] == pytest.approx([0.6363636364, -0.2727272727, 1.0909090909])
    assert body["result"]["json_roundtrip"] is True
    assert body["result"]["sha256"] == hashlib.sha256(b"rlayer").hexdigest()
    assert set(body["timings"]) == {"load_ms", "compute_ms"}
    # The Lambda-shaped root: R started in C.UTF-8 and iconv converts.
    assert body["environment"] == {"locale": "C.UTF-8", "iconv": True}


def test_canary_fails_when_a_package_does_not_load(
    runtime_layer: Path, r_layer: Path, make_session: SessionFactory
) -> None:
    session = make_session(
        layers=[runtime_layer, r_layer],
        task_root=REPO / "runtime" / "canary",
        handler="canary.handler",
        timeout_s=30,
    )
    result = session.invoke(json.dumps({"packages": ["jsonlite", "notapackage42"]}).encode())
    assert result.function_error == "Unhandled"
    body = result.json_payload()
    assert body["errorType"] == "CanaryError"
    assert "notapackage42" in body["errorMessage"]
    wrong = session.invoke(json.dumps({"expected_r_version": "9.9.9", "packages": []}).encode())
    assert "expected 9.9.9" in wrong.json_payload()["errorMessage"]


def _zombie(pid: int) -> bool:
    """True when pid exists and is a zombie (a reaped process no longer exists)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_closing_a_sandboxed_runtime_leaves_no_process_behind(
    runtime_layer: Path,
    r_layer: Path,
    write_handler: HandlerWriter,
    make_session: SessionFactory,
) -> None:
    root = write_handler("env.R", ENV_R)
    session = make_session(layers=[runtime_layer, r_layer], task_root=root, handler="env.handler")
    assert session.invoke(b"{}").ok
    pid = session.runtime_pid
    assert pid is not None
    tree = _tree(pid)
    assert len(tree) >= 3  # bwrap, its pid-1 child in the namespace, R
    session.close()
    # Not even a zombie: bwrap reaped its child, and the session reaped bwrap.
    left = [p for p in tree if Path(f"/proc/{p}").exists() or _zombie(p)]
    assert left == []
