"""rlayer.builders.sources: finding what `make local-sources` prepared."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.models import BuildSpec
from chalicelib.settings import Settings
from rlayer.builders.local import LocalBuildBackend
from rlayer.builders.sources import cache_dir, local_sources, with_local_sources


def _prepare(root: Path, *, tarball: bool = True, packages: bool = True) -> None:
    sources = root / "sources"
    (sources / "repo/src/contrib").mkdir(parents=True)
    if tarball:
        for version in ("4.2.2", "4.5.0"):
            (sources / f"R-{version}.tar").write_bytes(b"tarball")
    if packages:
        for repo in ("repo", "repo-4.2.2", "repo-4.5.0"):
            (sources / repo / "src/contrib").mkdir(parents=True, exist_ok=True)
            (sources / repo / "src/contrib/PACKAGES").write_text("Package: digest\n")
    (sources / "env").write_text(
        f"R_SOURCE={sources}/R-4.2.2.tar\n"
        f"R_SOURCE_TEMPLATE={sources}/R-{{version}}.tar\n"
        f"RLAYER_CRAN_REPO=file://{sources}/repo\n"
        f"RLAYER_CRAN_REPO_TEMPLATE=file://{sources}/repo-{{version}}\n"
        "RLAYER_LOCAL_R_VERSION=4.2.2\n"
        'RLAYER_LOCAL_R_VERSIONS="4.2.2 4.5.0"\n'
        f"RLAYER_LOCAL_RELEASES=file://{sources}/releases.json\n"
    )


def test_the_cache_follows_rlayer_cache_dir_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("RLAYER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg/rlayer"


def test_prepared_sources_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path))
    _prepare(tmp_path)
    found = local_sources()
    assert found is not None
    assert found.r_source == f"{tmp_path}/sources/R-4.2.2.tar"
    assert found.cran_repo == f"file://{tmp_path}/sources/repo"
    assert found.r_version == "4.2.2"
    assert found.r_versions == ("4.2.2", "4.5.0")
    assert found.source_for("4.5.0") == f"{tmp_path}/sources/R-4.5.0.tar"
    assert found.source_for("4.4.1") is None


def test_sources_of_an_older_script_are_prepared_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path))
    _prepare(tmp_path)
    env = tmp_path / "sources/env"
    env.write_text(
        "\n".join(line for line in env.read_text().splitlines() if "VERSIONS" not in line)
    )
    assert local_sources() is None


@pytest.mark.parametrize("missing", ["tarball", "packages"])
def test_half_prepared_sources_do_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path))
    _prepare(tmp_path, **{missing: False})
    assert local_sources() is None


def test_settings_take_local_sources_only_when_no_source_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path))
    _prepare(tmp_path)
    offline = with_local_sources(Settings(r_source="", cran_repo="https://cloud.r-project.org"))
    assert offline.r_source.endswith("R-4.2.2.tar")
    assert offline.cran_repo.startswith("file://")
    configured = Settings(r_source="https://example.org/R-4.4.1.tar.gz")
    assert with_local_sources(configured) is configured


@pytest.mark.parametrize(
    ("configured", "r_version", "source", "repo"),
    [
        # Nothing configured: both from the local sources, those of that very R.
        ({}, "4.5.0", "sources/R-4.5.0.tar", "file://{tmp}/sources/repo-4.5.0"),
        # --r-source alone keeps the prepared repository (it used to switch to CRAN).
        (
            {"r_source": "/elsewhere/R-4.4.1.tar.gz"},
            "4.4.1",
            "/elsewhere/R-4.4.1.tar.gz",
            "file://{tmp}/sources/repo",
        ),
        # --repo alone keeps the prepared R source.
        (
            {"cran_repo": "https://cran.example.org"},
            "4.2.2",
            "sources/R-4.2.2.tar",
            "https://cran.example.org",
        ),
        # An R the sources lack comes from CRAN (where CRAN can be reached).
        ({}, "4.4.1", "", "file://{tmp}/sources/repo"),
    ],
)
def test_the_backend_picks_r_source_and_repository_independently(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    configured: dict[str, str],
    r_version: str,
    source: str,
    repo: str,
) -> None:
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path))
    _prepare(tmp_path)
    backend = LocalBuildBackend(Settings(**configured))  # type: ignore[arg-type]
    spec = BuildSpec(r_version=r_version)
    env = backend._environment("b-1", spec, tmp_path / "b-1", str(tmp_path / "out"))
    expected = source if not source or source.startswith("/") else f"{tmp_path}/{source}"
    assert env.get("R_SOURCE", "") == expected
    assert env["RLAYER_CRAN_REPO"] == repo.format(tmp=tmp_path)
