"""The build root: its identity keys the caches, and a root that cannot be made fails the
build with apt's message and leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from chalicelib.builders.base import BuildState
from chalicelib.models import BuildSpec
from chalicelib.settings import get_settings
from rlayer.builders import buildroot
from rlayer.builders.buildspec import BUILDSPEC
from rlayer.builders.local import LocalBuildBackend

pytestmark = pytest.mark.integration
PREPARE = BUILDSPEC.parent / "prepare.sh"


def _prepare(tmp_path: Path, build_os: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "RLAYER_BUILD_ID": "b1",
        "RLAYER_R_VERSION": "4.2.2",
        "RLAYER_ARCH": "x86_64" if os.uname().machine == "x86_64" else "arm64",
        "RLAYER_SPEC_HASH": "0123456789abcdef",
        "RLAYER_RUNTIME_LAYER_NAME": "r-4_2_2",
        "RLAYER_PACKAGES_LAYER_NAME": "r-4_2_2-pkgs",
        "RLAYER_ARTIFACT_URI": str(tmp_path / "artifacts"),
        "RLAYER_WORK_DIR": str(tmp_path / f"work-{build_os}"),
        "RLAYER_CACHE_DIR": str(tmp_path / "cache"),
        "RLAYER_OPT_MODE": "bwrap",
        "RLAYER_BUILD_OS": build_os,
    }
    done = subprocess.run(
        ["sh", str(PREPARE)], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stderr


def _recipe(log: str) -> str:
    return next(line.split()[3].rstrip(",") for line in log.splitlines() if " recipe " in line)


def test_a_changed_build_root_recompiles_instead_of_restoring(tmp_path: Path) -> None:
    first = _prepare(tmp_path, "debian-bullseye-aaaaaaaaaaaa")
    assert "not cached: R will be built" in first
    recipe = _recipe(first)
    # Put a runtime layer into the cache under root A's key, as a finished build would.
    key = tmp_path / "cache" / "build" / "runtime" / f"4.2.2-{_arch()}-{recipe}"
    key.mkdir(parents=True)
    with zipfile.ZipFile(key / "runtime.zip", "w") as zf:
        zf.writestr("bootstrap", "#!/bin/sh\n")
    (key / "runtime.manifest.json").write_text(json.dumps({"reused_runtime": False}))
    (key / "runtime-libs.txt").write_text("")
    assert "reused from the cache" in _prepare(tmp_path, "debian-bullseye-aaaaaaaaaaaa")
    # The same request in another root (this machine's own OS, say): a different key.
    other = _prepare(tmp_path, "debian-12")
    assert _recipe(other) != recipe
    assert "not cached: R will be built" in other


def _arch() -> str:
    return "x86_64" if os.uname().machine == "x86_64" else "arm64"


def test_a_root_that_cannot_be_made_fails_the_build_with_apts_message(tmp_path: Path) -> None:
    missing = "rlayer-no-such-package"
    backend = LocalBuildBackend(
        get_settings(),
        work_root=tmp_path / "builds",
        extra_env={"RLAYER_SYSTEM_PACKAGES": missing},
    )
    ref = backend.start_build("b-root", BuildSpec(r_version="4.2.2"))
    deadline = time.monotonic() + 300
    while (progress := backend.check_build(ref)).state is BuildState.IN_PROGRESS:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert progress.state is BuildState.FAILED
    assert progress.reason is not None
    assert progress.reason.startswith("build root: mmdebstrap bullseye failed")
    assert missing in progress.reason
    # Nothing half-made is kept: neither the root nor its temporary directory.
    name = buildroot.identity((missing,))
    assert not [
        p for p in buildroot.roots_dir().iterdir() if name in p.name and "lock" not in p.name
    ]
    # And no phase ran.
    assert "phase install" not in backend.log_path(ref).read_text()


def _dpkg_version(root: Path, package: str) -> str:
    status = (root / "var/lib/dpkg/status").read_text()
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return fields["Version"]
    raise AssertionError(f"{package} is not installed in {root}")


def test_the_toolchain_the_requests_are_judged_by_is_the_roots_own() -> None:
    # rlayer.builders.toolchain refuses an R from buildroot.TOOLCHAIN without making a root;
    # that declaration must be what the root really has.
    root = buildroot.ensure()
    gcc = _dpkg_version(root.path, f"gcc-{buildroot.TOOLCHAIN['gcc'].split('.')[0]}")
    assert gcc.startswith(buildroot.TOOLCHAIN["gcc"] + "."), gcc
    assert _dpkg_version(root.path, "libc6").startswith(buildroot.TOOLCHAIN["glibc"] + "-")
