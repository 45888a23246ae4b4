"""Fixtures for tests that run real R: R itself, task roots, layers, runtime sessions.

R comes from Debian (r-base-core, r-cran-jsonlite); when it is missing the session installs
it with scripts/system-deps.sh, as `make test` does, rather than skipping.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlayer.local.host_runtime import host_runtime_layer
from rlayer.local.runtime_api import RuntimeSession
from tests.layerkit import built_runtime

REPO = Path(__file__).resolve().parents[2]
RUNTIME_SRC = REPO / "runtime" / "bootstrap"


def _r_has_jsonlite() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(
        ["Rscript", "-e", "quit(status = !requireNamespace('jsonlite', quietly = TRUE))"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture(scope="session")
def host_r() -> Path:
    """Host R's front end (bin/R), installed from Debian when missing."""
    if not _r_has_jsonlite() or shutil.which("bwrap") is None:
        subprocess.run(["sh", str(REPO / "scripts" / "system-deps.sh")], check=True)
    assert _r_has_jsonlite(), "R with jsonlite is needed (scripts/system-deps.sh)"
    front = shutil.which("R")
    assert front is not None
    return Path(front).resolve()


@pytest.fixture(scope="session")
def runtime_layer(tmp_path_factory: pytest.TempPathFactory, host_r: Path) -> Path:
    """This repository's runtime in the layer layout (/opt/bootstrap, /opt/runtime/),
    without R/: the bootstrap then uses host R."""
    return host_runtime_layer(str(host_r))


@pytest.fixture(scope="session")
def r_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The R part of a real runtime layer (R/ and lib/: R compiled with --prefix=/opt/R in
    the build root, see tests.layerkit.built_runtime), without the bootstrap and loop."""
    layer = tmp_path_factory.mktemp("r-layer")
    entries, _manifest, _zip = built_runtime()
    for entry in entries:
        if not entry.name.startswith(("R/", "lib/")):
            continue
        target = layer / entry.name
        if entry.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.symlink:
            target.symlink_to(entry.data.decode())
        else:
            target.write_bytes(entry.data)
            target.chmod(entry.mode or 0o644)
    return layer


@pytest.fixture(scope="session")
def digest_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packages layer holding the host's digest (Debian's, built for the same R 4.2)."""
    layer = tmp_path_factory.mktemp("digest-layer")
    shutil.copytree(
        Path("/usr/lib/R/site-library/digest"), layer / "packages/library/digest", symlinks=True
    )
    return layer


HandlerWriter = Callable[..., Path]


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    root.mkdir()
    return root


@pytest.fixture
def write_handler(task_root: Path) -> HandlerWriter:
    """write_handler("main.R", "handler <- function(event) 1") -> the task root."""

    def write(name: str, source: str) -> Path:
        path = task_root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return task_root

    return write


SessionFactory = Callable[..., RuntimeSession]


@pytest.fixture
def make_session() -> Iterator[SessionFactory]:
    """RuntimeSession(...) that is closed when the test ends."""
    sessions: list[RuntimeSession] = []

    def make(**kwargs: Any) -> RuntimeSession:
        session = RuntimeSession(**kwargs)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()
