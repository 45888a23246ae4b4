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
    r_source: str
    cran_repo: str
    r_version: str


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
            values[key.strip()] = value.strip()
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
        )
    except KeyError:
        return None
    repo_dir = Path(found.cran_repo.removeprefix("file://"))
    if not Path(found.r_source).is_file() or not (repo_dir / "src/contrib/PACKAGES").is_file():
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
