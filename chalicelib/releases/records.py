"""Release items (``RELEASE#<version>``, kind ``RELEASE``): what the scheduler has seen."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from chalicelib.aws.items import BY_TIME, RELEASE
from chalicelib.aws.store import Store
from chalicelib.models import Architecture, utcnow


class TriggeredBuild(BaseModel):
    """One build a release started (or found already running: ``created`` False)."""

    build_id: str
    subscription_id: str
    architecture: Architecture
    created: bool


class ReleaseRecord(BaseModel):
    version: str
    date: str | None = None
    nickname: str | None = None
    seen_at: str = Field(default_factory=utcnow)
    # A baseline record triggers nothing: it marks the releases that existed when the
    # scheduler first ran (``covers``) as seen, so history is not rebuilt.
    baseline: bool = False
    covers: list[str] = Field(default_factory=list)
    builds: list[TriggeredBuild] = Field(default_factory=list)

    def seen(self) -> set[str]:
        return {self.version, *self.covers}


def _from_item(item: dict[str, Any]) -> ReleaseRecord:
    return ReleaseRecord.model_validate(RELEASE.decode(item))


def record_release(store: Store, record: ReleaseRecord) -> bool:
    """Mark a release seen, once: False when another run recorded it first."""
    data = RELEASE.encode(
        record.model_dump(mode="json"), created_at=record.seen_at, ident=record.version
    )
    return store.put_new(RELEASE.key(record.version), data)


def get_release(store: Store, version: str) -> ReleaseRecord | None:
    item = store.get_item(RELEASE.key(version))
    return _from_item(item) if item else None


def all_releases(store: Store) -> list[ReleaseRecord]:
    # A few releases a year: reading them all each run is cheap.
    return [_from_item(item) for item in store.iter_query(BY_TIME, "kind", RELEASE.prefix)]


def list_releases(
    store: Store, *, limit: int, token: str | None
) -> tuple[list[ReleaseRecord], str | None]:
    items, nxt = store.query_kind(RELEASE.prefix, limit=limit, token=token)
    return [_from_item(item) for item in items], nxt
