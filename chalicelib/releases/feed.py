"""Reading the R release feed (default: the r-hub rversions API) with a bounded wait.

Two shapes are accepted: a list of releases (``/r-versions``, the default: every release
since the last run is caught even if several came out in between) or one release object
(``/r-release``). Each release is ``{"version", "date", "nickname", ...}``; other fields
are ignored. Releases before 4.0.0 are dropped (rlayer builds nothing older), but every
entry must still look like a release number: a feed that lists ``"latest"`` or ``"4.5"``
is garbage as a whole, and nothing of it is trusted.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from chalicelib.errors import FeedError
from chalicelib.models import MIN_R_VERSION, R_VERSION_RE
from chalicelib.upstream import read_url

# The real /r-versions answer is ~15 KB; anything this large is not that feed.
MAX_FEED_BYTES = 1 << 20
# R numbered its early releases X.Y (0.60, 1.0); since 1.4.1 always X.Y.Z.
_ANY_RELEASE_RE = re.compile(r"^\d+\.\d+(?:\.\d+)?$")
_SCHEMES = ("http", "https", "file")


class FeedEntry(BaseModel):
    """One release as the feed states it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: str
    date: str | None = None
    nickname: str | None = None


_FEED = TypeAdapter(list[FeedEntry] | FeedEntry)


class Release(BaseModel):
    """A release rlayer can build (>= 4.0.0, X.Y.Z); ordered by version number."""

    model_config = ConfigDict(frozen=True)

    version: str
    date: str | None = None
    nickname: str | None = None

    @property
    def key(self) -> tuple[int, ...]:
        return version_key(self.version)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def parse_feed(body: bytes) -> list[Release]:
    """The buildable releases of a feed body, oldest first; FeedError for garbage."""
    try:
        parsed = _FEED.validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        snippet = body[:80].decode("utf-8", "replace")
        raise FeedError(
            f"the feed is not a JSON release list ({first['msg']}); it began {snippet!r}"
        ) from exc
    entries = parsed if isinstance(parsed, list) else [parsed]
    if not entries:
        raise FeedError("the feed lists no releases")
    releases: dict[str, Release] = {}
    for entry in entries:
        if not _ANY_RELEASE_RE.match(entry.version):
            raise FeedError(f"the feed lists {entry.version!r}, which is not a release number")
        key = version_key(entry.version)
        if key < MIN_R_VERSION:
            continue
        if not R_VERSION_RE.match(entry.version):
            raise FeedError(f"the feed lists {entry.version!r}; R 4 releases are X.Y.Z")
        releases[entry.version] = Release(
            version=entry.version, date=entry.date, nickname=entry.nickname
        )
    if not releases:
        raise FeedError("the feed lists no release of R 4.0.0 or newer")
    return sorted(releases.values(), key=lambda r: r.key)


def fetch_releases(url: str, timeout_s: float) -> list[Release]:
    return parse_feed(read_feed(url, timeout_s))


def read_feed(url: str, timeout_s: float) -> bytes:
    """The feed's body, or FeedError when it is unreachable, slow, failing or too large."""
    if urlsplit(url).scheme not in _SCHEMES:
        raise FeedError(f"R_RELEASES_URL must be an http(s) or file URL, got {url!r}")
    return read_url(
        url,
        timeout_s=timeout_s,
        max_bytes=MAX_FEED_BYTES,
        what="the feed",
        error=FeedError,
        accept="application/json",
    )
