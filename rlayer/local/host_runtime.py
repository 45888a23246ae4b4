"""This source tree's R runtime laid out as a runtime layer, for this machine's R.

A function run without layers (handler development, the runtime's own tests) uses host R
with the runtime of this checkout: the bootstrap at the top, the loop's files in
``runtime/``, and ``runtime/native.so`` (the loop's C part) compiled from ``native/`` with
host R's ``R CMD SHLIB``, as the layer build does with the layer's R. Made once per change
of the sources or of R, in the cache directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from chalicelib.errors import ConfigurationError
from rlayer.builders.sources import cache_dir

RUNTIME_SRC = Path(__file__).resolve().parents[2] / "runtime" / "bootstrap"


def _sources() -> list[Path]:
    if not (RUNTIME_SRC / "bootstrap").is_file():
        raise ConfigurationError(
            f"the rlayer runtime is not at {RUNTIME_SRC}: run from a source checkout or pass "
            "a layer"
        )
    native = sorted((RUNTIME_SRC / "native").glob("*.[ch]"))
    return [RUNTIME_SRC / "bootstrap", *sorted(RUNTIME_SRC.glob("*.R")), *native]


def host_runtime_layer(r_front: str | None = None) -> Path:
    """The layer directory (bootstrap, runtime/); ``r_front``: the R to build with (R on
    PATH by default)."""
    front = r_front or shutil.which("R")
    if front is None:
        raise ConfigurationError("R is not installed: the runtime runs with this machine's R")
    front = os.path.realpath(front)
    sources = _sources()
    digest = hashlib.sha256(front.encode())
    for path in sources:
        digest.update(str(path.relative_to(RUNTIME_SRC)).encode() + b"\0" + path.read_bytes())
    layer = cache_dir() / "host-runtime" / digest.hexdigest()[:16]
    if (layer / "runtime" / "native.so").is_file():
        return layer
    layer.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="new-", dir=layer.parent))
    try:
        (work / "runtime").mkdir()
        (work / "native").mkdir()
        for path in sources:
            # The loop's R files go to runtime/; the bootstrap and native/ as they are.
            inside = (
                f"runtime/{path.name}" if path.suffix == ".R" else path.relative_to(RUNTIME_SRC)
            )
            shutil.copy2(path, work / inside)
        c_files = sorted(p.name for p in (work / "native").glob("*.c"))
        built = subprocess.run(
            [front, "CMD", "SHLIB", "-o", "native.so", *c_files],
            cwd=work / "native",
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise ConfigurationError(
                "could not compile the runtime's native part (runtime/bootstrap/native/) with "
                "this machine's R (R CMD SHLIB; R's headers and a C compiler are needed): "
                f"{built.stderr[-2000:]}"
            )
        (work / "native" / "native.so").rename(work / "runtime" / "native.so")
        shutil.rmtree(work / "native")
        work.chmod(0o755)
        try:
            work.rename(layer)
        except OSError:
            if not (layer / "runtime" / "native.so").is_file():
                raise
            # Another process made the same layer first: use it.
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return layer
