"""rlayer.builders.sources: finding what `make local-sources` prepared."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.settings import Settings
from rlayer.builders.sources import cache_dir, local_sources, with_local_sources


def _prepare(root: Path, *, tarball: bool = True, packages: bool = True) -> None:
    sources = root / "sources"
    (sources / "repo/src/contrib").mkdir(parents=True)
    if tarball:
        (sources / "R-4.2.2.tar.gz").write_bytes(b"tarball")
    if packages:
        (sources / "repo/src/contrib/PACKAGES").write_text("Package: digest\n")
    (sources / "env").write_text(
        f"R_SOURCE={sources}/R-4.2.2.tar.gz\n"
        f"RLAYER_CRAN_REPO=file://{sources}/repo\n"
        "RLAYER_LOCAL_R_VERSION=4.2.2\n"
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
    assert found.r_source == f"{tmp_path}/sources/R-4.2.2.tar.gz"
    assert found.cran_repo == f"file://{tmp_path}/sources/repo"
    assert found.r_version == "4.2.2"


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
    assert offline.r_source.endswith("R-4.2.2.tar.gz")
    assert offline.cran_repo.startswith("file://")
    configured = Settings(r_source="https://example.org/R-4.4.1.tar.gz")
    assert with_local_sources(configured) is configured
