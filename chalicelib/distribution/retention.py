"""Retention: superseded builds expire, and the expiry task deletes their versions.

When a build of a spec succeeds, the earlier proven builds of that spec (or of the same
subscription and architecture: a new patch release) are superseded: they stay listed, with
an expiry date ``retention_days`` ahead. The expiry task (a schedule) deletes each expired
build's versions in every region and keeps its record as the tombstone: when each version
was deleted and the ARN that replaces it.

The rule for versions several builds share (a reused runtime layer): a version is deleted
only when no current build (proven, not superseded) refers to it in any region, so nothing
the catalog shows as current is ever deleted. Each deletion is written to the record as it
happens; one that fails is left for the next run, and the record (the tombstone) stays.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from chalicelib.aws import lambdas
from chalicelib.aws.store import Store
from chalicelib.distribution.latest_index import index_build, unindex_build
from chalicelib.distribution.principals import RegionalVersion
from chalicelib.errors import RLayerError
from chalicelib.models import BuildRecord, BuildStatus, LayerRef
from chalicelib.observability import logger
from chalicelib.settings import Settings

STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"
# Expiry dates are days apart; a few runs a day delete a version within hours of its date.
EXPIRE_EVERY_HOURS = 6


class ExpiryResult(BaseModel):
    superseded: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    # Versions of expired builds a current build still uses (deleted after it, if ever).
    kept: list[str] = Field(default_factory=list)
    # Deletions that failed; the next run tries again.
    failed: list[str] = Field(default_factory=list)


def _stamp(when: datetime) -> str:
    return when.strftime(STAMP)


def _same_line(a: BuildRecord, b: BuildRecord) -> bool:
    """Whether ``b`` replaces ``a`` when newer: the same spec, or the same subscription on
    the same architecture (a new R release of a standing request)."""
    if a.spec_hash == b.spec_hash:
        return True
    return bool(
        a.subscription_id
        and a.subscription_id == b.subscription_id
        and a.spec.architecture is b.spec.architecture
    )


def supersede(
    store: Store, newer: BuildRecord, settings: Settings, *, now: datetime | None = None
) -> list[str]:
    """Mark the proven builds ``newer`` replaces as superseded; their ids."""
    now = now or datetime.now(UTC)
    expires = _stamp(now + timedelta(days=settings.retention_days))
    marked: list[str] = []
    for older in store.iter_builds(BuildStatus.SUCCEEDED):
        if older.build_id == newer.build_id or older.superseded_by:
            continue
        if older.created_at > newer.created_at or not _same_line(older, newer):
            continue
        fields = {"superseded_by": newer.build_id, "superseded_at": _stamp(now)}
        store.update_build(
            older.build_id, {**fields, "expires_at": expires}, expect=BuildStatus.SUCCEEDED
        )
        unindex_build(store, older)
        marked.append(older.build_id)
    if marked:
        logger.info("builds superseded", extra={"superseded": marked, "expires_at": expires})
    return marked


def arns_of(record: BuildRecord) -> set[str]:
    found: set[str] = set()
    for layer in record.layers:
        if not layer.retired:
            found.add(layer.arn)
        found |= {v.arn for v in layer.regions.values() if not v.retired}
    return found


def _replacement(record: BuildRecord, by_id: dict[str, BuildRecord]) -> BuildRecord | None:
    """The current build at the end of the chain of builds that replaced this one."""
    seen = {record.build_id}
    current = record
    while current.superseded_by and current.superseded_by not in seen:
        nxt = by_id.get(current.superseded_by)
        if nxt is None:
            return None
        seen.add(nxt.build_id)
        current = nxt
    return current if current is not record else None


def _expire_layer(
    layer: LayerRef,
    replacement: BuildRecord | None,
    in_use: set[str],
    now: str,
    result: ExpiryResult,
    home: str,
) -> LayerRef:
    new = (
        next((la for la in replacement.layers if la.kind == layer.kind), None)
        if replacement
        else None
    )
    # A record from before regions were recorded: the stack's region only.
    regions = dict(layer.regions) or {home: RegionalVersion(arn=layer.arn, reused=layer.reused)}
    for region, version in regions.items():
        if version.deleted_at or version.retired:
            continue
        if version.arn in in_use:
            result.kept.append(version.arn)
            continue
        try:
            lambdas.delete_layer_version(version.name, version.version, region)
        except Exception as exc:
            # Whatever failed (throttling, a region down), the next run tries again.
            logger.warning("layer deletion failed", extra={"arn": version.arn, "error": str(exc)})
            result.failed.append(version.arn)
            continue
        replaced = new.regions.get(region) if new is not None else None
        regions[region] = version.model_copy(
            update={"deleted_at": now, "replaced_by": replaced.arn if replaced else None}
        )
        result.deleted.append(version.arn)
    return layer.model_copy(update={"regions": regions})


def expire(store: Store, settings: Settings, *, now: datetime | None = None) -> ExpiryResult:
    """Delete the versions of builds whose expiry has passed; the scheduled task."""
    now = now or datetime.now(UTC)
    result = ExpiryResult()
    records = list(store.iter_builds(BuildStatus.SUCCEEDED))
    # A supersession RecordSuccess could not write is made up here, newest first.
    for record in sorted(records, key=lambda r: r.created_at, reverse=True):
        if not record.superseded_by:
            result.superseded += supersede(store, record, settings, now=now)
    if result.superseded:
        records = list(store.iter_builds(BuildStatus.SUCCEEDED))
    by_id = {r.build_id: r for r in records}
    in_use: set[str] = set()
    for record in records:
        if not record.superseded_by:
            in_use |= arns_of(record)
            # The resolver's entry, written again: repairs a write that failed.
            index_build(store, record, settings.aws_region)
    stamp = _stamp(now)
    for record in records:
        if record.deleted_at or not record.expires_at or record.expires_at > stamp:
            continue
        replacement = _replacement(record, by_id)
        failed_before = len(result.failed)
        layers = [
            _expire_layer(layer, replacement, in_use, stamp, result, settings.aws_region)
            for layer in record.layers
        ]
        fields: dict[str, object] = {"layers": [la.model_dump(mode="json") for la in layers]}
        if len(result.failed) == failed_before:
            fields["deleted_at"] = stamp
        try:
            store.update_build(record.build_id, fields, expect=BuildStatus.SUCCEEDED)
        except RLayerError:
            logger.exception("tombstone not written; next run", extra={"build": record.build_id})
    logger.info("expiry run", extra=result.model_dump())
    return result
