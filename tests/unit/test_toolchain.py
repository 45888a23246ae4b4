"""Which R versions a root no newer than Lambda's OS can compile (buildspec/toolchain.txt),
decided before any build by the local tools and again inside the build by common.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from chalicelib.errors import RequestInvalidError
from chalicelib.models import BuildSpec
from chalicelib.settings import Settings
from rlayer.builders import buildroot
from rlayer.builders.local import LocalBuildBackend
from rlayer.builders.toolchain import TABLE, read_table, refusal, refusals
from rlayer.local.stack_env import stack_environment
from tests.unit.test_local_backend_sources import _prepare

BUILDSPEC = TABLE.parent
# A future R that needs more than the Debian 11 root has, and one past Lambda's ceiling.
FUTURE = """\
ceiling gcc 11 Amazon Linux 2023 ships GCC 11
ceiling glibc 2.34 Amazon Linux 2023 ships glibc 2.34
need [>=4.0] gcc 5 C99
need [>=4.5] gcc 11 a C23 feature only GCC 11 has
need [>=4.6] glibc 2.35 a C library function glibc added in 2.35
"""


def _table(tmp_path: Path, text: str = FUTURE) -> Path:
    path = tmp_path / "toolchain.txt"
    path.write_text(text)
    return path


def test_every_r_the_project_prepares_builds_in_its_root() -> None:
    table = read_table()
    assert table.ceilings["gcc"][0] == "11" and table.ceilings["glibc"][0] == "2.34"
    assert refusals(("4.2.2", "4.5.0", "4.6.1"), buildroot.TOOLCHAIN, buildroot.ROOT_NAME) == {}


def test_a_need_beyond_the_root_or_beyond_lambda_is_refused_with_its_reason(
    tmp_path: Path,
) -> None:
    table = read_table(_table(tmp_path))
    found = refusals(("4.2.2", "4.5.0", "4.6.1"), buildroot.TOOLCHAIN, "Debian 11", table)
    assert set(found) == {"4.5.0", "4.6.1"}
    assert found["4.5.0"] == (
        "R 4.5.0 needs gcc >= 11 (a C23 feature only GCC 11 has); the build root (Debian 11) "
        "has gcc 10.2"
    )
    # 4.6.1 fails the first applicable need in table order: GCC, then glibc past the ceiling.
    assert "needs gcc >= 11" in found["4.6.1"]
    only_glibc = read_table(_table(tmp_path, FUTURE.replace("need [>=4.5] gcc 11", "#")))
    why = refusal("4.6.1", buildroot.TOOLCHAIN, "Debian 11", only_glibc)
    assert why is not None
    assert "needs glibc >= 2.35" in why and "newer than Lambda's OS allows (glibc 2.34" in why
    assert "would not load on Lambda" in why


def test_guards_read_like_configure_flags(tmp_path: Path) -> None:
    table = read_table(_table(tmp_path, "need [<4.3] gcc 99 old R only\n"))
    assert refusal("4.2.2", {"gcc": "10.2"}, "root", table) is not None
    assert refusal("4.3.0", {"gcc": "10.2"}, "root", table) is None


def test_an_unreadable_line_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"toolchain.txt:2: cannot read 'need \[=4\.5\] gcc'"):
        read_table(_table(tmp_path, "ceiling gcc 11 x\nneed [=4.5] gcc\n"))


def test_the_local_stack_offers_only_what_it_can_build_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("R_SOURCE", raising=False)
    _prepare(tmp_path)
    monkeypatch.setenv("RLAYER_TOOLCHAIN_TABLE", str(_table(tmp_path)))
    env = stack_environment(tmp_path / "data", 5000, {})
    assert env["R_VERSIONS"] == "4.2.2"
    monkeypatch.setenv("R_VERSIONS_REFUSED", str(env["R_VERSIONS_REFUSED"]))
    settings = Settings()  # read from the environment, as the app reads it
    assert list(settings.r_versions_refused) == ["4.5.0"]
    assert "needs gcc >= 11" in settings.r_versions_refused["4.5.0"]


def test_the_local_backend_refuses_before_making_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAYER_TOOLCHAIN_TABLE", str(_table(tmp_path)))
    backend = LocalBuildBackend(Settings(), work_root=tmp_path / "work")
    with pytest.raises(RequestInvalidError, match=r"R 4\.5\.0 needs gcc >= 11") as raised:
        backend.start_build("20261204T120000-0a1b2c3d", BuildSpec(r_version="4.5.0"))
    assert raised.value.field == "r_version"
    assert not (tmp_path / "work").exists()


def _check_in_build(buildspec: Path, r_version: str) -> subprocess.CompletedProcess[str]:
    # common.sh's own check_toolchain, with this machine's compilers standing in for a root's.
    script = (
        'log() { :; }; die() { printf "ERROR: %s\\n" "$*" >&2; exit 1; }\n'
        f'BUILDSPEC_DIR="{buildspec}"\n'
        f'eval "$(sed -n "/^version_number()/,/^}}/p;/^version_applies()/,/^}}/p;'
        f'/^check_toolchain()/,/^}}/p" "{buildspec}/common.sh")"\n'
        "check_toolchain\n"
    )
    env = {**os.environ, "RLAYER_R_VERSION": r_version}
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler")
def test_the_compile_step_checks_the_same_table_with_the_compilers_it_has(
    tmp_path: Path,
) -> None:
    assert _check_in_build(BUILDSPEC, "4.6.1").returncode == 0
    copy = tmp_path / "buildspec"
    shutil.copytree(BUILDSPEC, copy)
    (copy / "toolchain.txt").write_text("need [>=4.6] gcc 99 a compiler from the future\n")
    assert _check_in_build(copy, "4.5.0").returncode == 0
    done = _check_in_build(copy, "4.6.1")
    assert done.returncode == 1
    assert "R 4.6.1 needs gcc >= 99 (a compiler from the future); this build has gcc" in (
        done.stderr
    )
