"""Where builds find R's source and a CRAN-like repository when CRAN cannot be reached.

``scripts/local-sources.sh`` (``make local-sources``) builds both from Debian's source
archive into the cache and writes their locations to ``<cache>/sources/env``; the demo and
the tests read them from here instead of asking the user.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pydantic import BaseModel

from chalicelib.errors import ConfigurationError
from chalicelib.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_SOURCES_SCRIPT = REPO_ROOT / "scripts" / "local-sources.sh"


class LocalSources(BaseModel):
    r_source: str  # the default R's tarball
    cran_repo: str
    r_version: str  # the default R
    # Every R prepared (the default first), and where each one's tarball is.
    r_versions: tuple[str, ...]
    r_source_template: str
    cran_repo_template: str  # file://.../repo-{version}: each R with packages it can build
    releases_url: str  # a release feed of exactly these versions (file://)

    def source_for(self, r_version: str) -> str | None:
        """The tarball of this R, or None when it was not prepared."""
        if r_version not in self.r_versions:
            return None
        return self.r_source_template.replace("{version}", r_version)

    def repo_for(self, r_version: str) -> str:
        """The repository for this R: its own when prepared, else the default R's."""
        if r_version not in self.r_versions:
            return self.cran_repo
        return self.cran_repo_template.replace("{version}", r_version)


def cache_dir() -> Path:
    """``${RLAYER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rlayer}``, as the scripts use."""
    explicit = os.environ.get("RLAYER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "rlayer"


def default_data_dir() -> Path:
    """Where `rlayer serve` keeps builds and logs (cleared when a stack starts)."""
    return cache_dir() / "local"


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value.strip().strip('"')
    return values


def local_sources() -> LocalSources | None:
    """The prepared local sources, or None when ``make local-sources`` has not run."""
    env_file = cache_dir() / "sources" / "env"
    if not env_file.is_file():
        return None
    values = _read_env_file(env_file)
    try:
        found = LocalSources(
            r_source=values["R_SOURCE"],
            cran_repo=values["RLAYER_CRAN_REPO"],
            r_version=values["RLAYER_LOCAL_R_VERSION"],
            r_versions=tuple(values["RLAYER_LOCAL_R_VERSIONS"].split()),
            r_source_template=values["R_SOURCE_TEMPLATE"],
            cran_repo_template=values["RLAYER_CRAN_REPO_TEMPLATE"],
            releases_url=values["RLAYER_LOCAL_RELEASES"],
        )
    except KeyError:
        return None  # written by an older script: `make local-sources` runs it again
    repo_dir = Path(found.cran_repo.removeprefix("file://"))
    tarballs = [found.source_for(v) or "" for v in found.r_versions]
    if (
        not all(Path(t).is_file() for t in tarballs)
        or not (repo_dir / "src/contrib/PACKAGES").is_file()
    ):
        return None
    return found


def ensure_local_sources() -> LocalSources:
    """Prepare the local sources if needed (idempotent; reads Debian's archive once)."""
    found = local_sources()
    if found is not None:
        return found
    done = subprocess.run(
        ["sh", str(LOCAL_SOURCES_SCRIPT)], capture_output=True, text=True, check=False
    )
    found = local_sources()
    if done.returncode != 0 or found is None:
        raise ConfigurationError(
            "could not prepare local R sources (scripts/local-sources.sh): "
            + (done.stderr or done.stdout)[-2000:]
        )
    return found


def with_local_sources(settings: Settings) -> Settings:
    """``settings`` building from the prepared local sources (``make local-sources``) when
    no R source is configured: what the demo and the tests run with offline."""
    found = local_sources()
    if found is None or settings.r_source:
        return settings
    return settings.model_copy(update={"r_source": found.r_source, "cran_repo": found.cran_repo})
