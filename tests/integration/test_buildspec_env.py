"""buildspec/common.sh: every request value is validated before a step uses it."""

from __future__ import annotations

import io
import platform
import subprocess
import tarfile
from pathlib import Path

import pytest

from chalicelib.builders.base import build_environment
from chalicelib.models import Architecture, BuildSpec
from rlayer.builders.buildspec import BUILDSPEC

HOST_ARCH = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    spec = BuildSpec(
        r_version="4.2.2", architecture=Architecture(HOST_ARCH), packages=["digest", "R6==2.5.1"]
    )
    env = build_environment("b-1", spec, artifact_uri=str(tmp_path / "artifacts"))
    env.update(
        PATH="/usr/bin:/bin",
        RLAYER_WORK_DIR=str(tmp_path / "work"),
        RLAYER_CACHE_DIR=str(tmp_path / "cache"),
    )
    env.update(overrides)
    return env


def _source_common(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # $0 must sit in buildspec/ (common.sh finds its siblings from it).
    script = f'. "{BUILDSPEC.parent}/common.sh"; echo "OPT=$OPT MODE=$RLAYER_OPT_MODE"'
    return subprocess.run(
        ["sh", "-c", script, str(BUILDSPEC.parent / "step.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_valid_request_passes_and_stages_opt_in_the_work_dir(tmp_path: Path) -> None:
    done = _source_common(_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"OPT={tmp_path}/work/root/opt MODE=bwrap" in done.stdout


def test_codebuild_writes_the_real_opt(tmp_path: Path) -> None:
    done = _source_common(_env(tmp_path, CODEBUILD_BUILD_ID="rlayer:1", RLAYER_OPT_MODE=""))
    assert done.returncode == 0, done.stderr
    assert "OPT=/opt MODE=direct" in done.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RLAYER_PACKAGES", "digest; rm -rf /"),
        ("RLAYER_PACKAGES", "digest $(id)"),
        ("RLAYER_PACKAGES", "digest\nR6"),
        ("RLAYER_PACKAGES", "1bad"),
        ("RLAYER_R_VERSION", "4.2"),
        ("RLAYER_R_VERSION", "4.2.2\n"),
        ("RLAYER_ARCH", "sparc"),
        ("RLAYER_BUILD_ID", "../../etc"),
        ("RLAYER_ARTIFACT_URI", "s3://bucket/x y"),
        ("R_SOURCE", "ftp://example.org/R.tar.gz"),
        ("R_SOURCE", "/tmp/R.tar.gz;reboot"),
        ("RLAYER_CRAN_REPO", "https://cran.example.org/`id`"),
        ("RLAYER_SYSTEM_PACKAGES", "libxml2-devel --allowerasing"),
        ("RLAYER_SPEC_HASH", ""),
    ],
)
def test_an_invalid_value_stops_the_step_and_is_named(
    tmp_path: Path, name: str, value: str
) -> None:
    done = _source_common(_env(tmp_path, **{name: value}))
    assert done.returncode != 0
    assert name in done.stderr
    assert "OPT=" not in done.stdout
    assert not (tmp_path / "work").exists()


def test_the_wrong_architecture_for_this_machine_is_refused(tmp_path: Path) -> None:
    other = "x86_64" if HOST_ARCH == "arm64" else "arm64"
    done = _source_common(_env(tmp_path, RLAYER_ARCH=other))
    assert done.returncode != 0
    assert f"asks for {other}" in done.stderr


def _flags(tmp_path: Path, r_version: str) -> list[str]:
    script = f'. "{BUILDSPEC.parent}/common.sh"; configure_flags'
    done = subprocess.run(
        ["sh", "-c", script, str(BUILDSPEC.parent / "step.sh")],
        env=_env(tmp_path, RLAYER_R_VERSION=r_version),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize(
    ("r_version", "blas_in_libr"),
    [("4.0.0", True), ("4.2.2", True), ("4.4.3", True), ("4.5.0", False), ("4.6.1", False)],
)
def test_configure_flags_follow_the_r_version(
    tmp_path: Path, r_version: str, blas_in_libr: bool
) -> None:
    # R 4.5 rewrote its bundled BLAS: built into libR, R.bin no longer links.
    flags = _flags(tmp_path, r_version)
    assert ("--disable-BLAS-shlib" in flags) is blas_in_libr
    assert "--enable-R-shlib" in flags and "--prefix=/opt/R" in flags
    assert not [f for f in flags if f.startswith("[")]


def test_r_source_may_name_the_version(tmp_path: Path) -> None:
    source = tmp_path / "R-4.5.0.tar"
    data = b"4.5.0\n"
    with tarfile.open(source, "w:xz") as tar:  # xz, as Debian ships R 4.6
        info = tarfile.TarInfo("R-4.5.0/VERSION")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    env = _env(tmp_path, RLAYER_R_VERSION="4.5.0", R_SOURCE=f"{tmp_path}/R-{{version}}.tar")
    done = subprocess.run(
        ["sh", str(BUILDSPEC.parent / "fetch-r.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "work/src/R/VERSION").read_text() == "4.5.0\n"
