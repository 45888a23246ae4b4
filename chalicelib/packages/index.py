"""A CRAN-like repository's package index, read at request time.

The index is the repository's ``src/contrib/PACKAGES`` (Debian control format): per
package its current version, ``Depends``, ``Imports``, ``LinkingTo`` and, where the
repository writes it, ``SystemRequirements``. Locally that is the repository
``make local-sources`` builds (with ``SystemRequirements``, and superseded versions under
``Archive/``); in AWS it is CRAN's own, whose ``PACKAGES`` has no ``SystemRequirements``,
so there the system-library rules match by package name only (see system_libraries.json).

Each process keeps an index for ``INDEX_TTL_S``: a new CRAN release of a package shows at
most that late. While the index cannot be read the checks are skipped, logged, and the
build's own install step is the judge (it fails naming the package).
"""

from __future__ import annotations

import gzip
import re
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict

from chalicelib.errors import PackageIndexError
from chalicelib.packages.dcf import parse_paragraphs
from chalicelib.upstream import read_url

INDEX_TTL_S = 900.0
INDEX_TIMEOUT_S = 5.0
# CRAN's PACKAGES is about 5 MB (1.5 MB gzipped) for some 22,000 packages.
MAX_INDEX_BYTES = 64 << 20
# Packages that ship with R itself: never in a repository, never installed into a layer.
BASE_PACKAGES = frozenset(
    [
        "base",
        "compiler",
        "datasets",
        "graphics",
        "grDevices",
        "grid",
        "methods",
        "parallel",
        "splines",
        "stats",
        "stats4",
        "tcltk",
        "tools",
        "utils",
    ]
)
_DEP_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9.]*)\s*(?:\(\s*([<>=!]+)\s*([^)\s]+)\s*\))?\s*$")


class Requirement(BaseModel):
    """One entry of a Depends/Imports/LinkingTo field: ``name (>= 1.2)``."""

    model_config = ConfigDict(frozen=True)

    name: str
    op: str | None = None
    version: str | None = None

    def satisfied_by(self, version: str) -> bool:
        if self.op is None or self.version is None:
            return True
        have, need = version_key(version), version_key(self.version)
        return {
            ">=": have >= need,
            ">": have > need,
            "<=": have <= need,
            "<": have < need,
            "==": have == need,
            "!=": have != need,
        }.get(self.op, True)

    def __str__(self) -> str:
        return f"{self.name} ({self.op} {self.version})" if self.op else self.name


class IndexEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    depends: tuple[Requirement, ...] = ()
    imports: tuple[Requirement, ...] = ()
    linking_to: tuple[Requirement, ...] = ()
    system_requirements: str | None = None

    def runtime_needs(self) -> tuple[Requirement, ...]:
        """Depends and Imports less R and its base packages: what must be installed too."""
        return tuple(
            r
            for r in (*self.depends, *self.imports)
            if r.name != "R" and r.name not in BASE_PACKAGES
        )

    def build_needs(self) -> tuple[Requirement, ...]:
        return tuple(r for r in self.linking_to if r.name not in BASE_PACKAGES)

    def r_requirement(self) -> tuple[Requirement, ...]:
        return tuple(r for r in self.depends if r.name == "R")


class PackageIndex(BaseModel):
    """The repository's current packages, and the superseded versions it keeps (None when
    the repository's archive cannot be listed, as for CRAN over https)."""

    model_config = ConfigDict(frozen=True)

    url: str
    packages: dict[str, IndexEntry]
    archived: dict[str, tuple[str, ...]] | None = None

    def versions(self, name: str) -> tuple[str, ...] | None:
        """Every version of ``name`` the repository has, newest first; None: unknown."""
        entry = self.packages.get(name)
        if self.archived is None:
            return None
        found = {*self.archived.get(name, ()), *([entry.version] if entry else [])}
        return tuple(sorted(found, key=version_key, reverse=True))


def version_key(version: str) -> tuple[int, ...]:
    """R's package_version order: numbers separated by '.' or '-'."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def parse_requirements(text: str | None) -> tuple[Requirement, ...]:
    if not text:
        return ()
    found = []
    for item in text.split(","):
        match = _DEP_RE.match(item)
        if match:
            found.append(Requirement(name=match[1], op=match[2], version=match[3]))
    return tuple(found)


def parse_index(url: str, text: str, archived: dict[str, tuple[str, ...]] | None) -> PackageIndex:
    packages: dict[str, IndexEntry] = {}
    for record in parse_paragraphs(text):
        name, version = record.get("Package"), record.get("Version")
        if not name or not version:
            continue
        entry = IndexEntry(
            name=name,
            version=version,
            depends=parse_requirements(record.get("Depends")),
            imports=parse_requirements(record.get("Imports")),
            linking_to=parse_requirements(record.get("LinkingTo")),
            system_requirements=record.get("SystemRequirements"),
        )
        # CRAN lists a package once; keep the newest should a repository list it twice.
        known = packages.get(name)
        if known is None or version_key(version) > version_key(known.version):
            packages[name] = entry
    return PackageIndex(url=url, packages=packages, archived=archived)


def index_url(repo: str) -> str:
    return repo.rstrip("/") + "/src/contrib/PACKAGES"


def _archive(repo: str) -> dict[str, tuple[str, ...]] | None:
    """Archive/<name>/<name>_<version>.tar.gz of a file:// repository."""
    parts = urlsplit(repo)
    if parts.scheme != "file":
        return None
    root = Path(unquote(parts.path)) / "src" / "contrib" / "Archive"
    found: dict[str, tuple[str, ...]] = {}
    if root.is_dir():
        for folder in root.iterdir():
            prefix = folder.name + "_"
            found[folder.name] = tuple(
                f.name.removeprefix(prefix).removesuffix(".tar.gz")
                for f in folder.glob(f"{prefix}*.tar.gz")
            )
    return found


def read_index(repo: str, *, timeout_s: float = INDEX_TIMEOUT_S) -> PackageIndex:
    """The repository's index, fresh; PackageIndexError when it cannot be read."""
    url = index_url(repo)
    body = read_url(
        url,
        timeout_s=timeout_s,
        max_bytes=MAX_INDEX_BYTES,
        what=f"the package index {url}",
        error=PackageIndexError,
    )
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode("utf-8", errors="replace")
    if "Package:" not in text:
        raise PackageIndexError(f"the package index {url} lists no packages")
    return parse_index(url, text, _archive(repo))


_cache: dict[str, tuple[float, PackageIndex]] = {}
_lock = threading.Lock()


def cached_index(repo: str) -> PackageIndex:
    """:func:`read_index`, kept for INDEX_TTL_S per repository in this process."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(repo)
        if hit is not None and now - hit[0] < INDEX_TTL_S:
            return hit[1]
    index = read_index(repo)
    with _lock:
        _cache[repo] = (now, index)
    return index


def forget_indexes() -> None:
    """Drop the cached indexes (tests; the local stack after `make local-sources`)."""
    with _lock:
        _cache.clear()
