"""Proven builds written to the table as the pipeline writes them (for the catalog's
tests, its page and its bench): a record walked through every status, with one version
per region of each layer, as PublishLayers and RecordSuccess leave it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Literal

from chalicelib.aws.items import BUILD
from chalicelib.aws.store import Store
from chalicelib.distribution.latest_index import index_build, unindex_build
from chalicelib.distribution.principals import RegionalVersion
from chalicelib.models import (
    Architecture,
    BuildRecord,
    BuildSpec,
    BuildStatus,
    CanaryResult,
    LayerRef,
)

ACCOUNT = "123456789012"
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def arn(region: str, name: str, version: int) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:{version}"


def proven(
    store: Store,
    r_version: str,
    *,
    packages: dict[str, str] | None = None,
    architecture: Architecture = Architecture.X86_64,
    regions: tuple[str, ...] = ("us-east-1",),
    version: int = 1,
    shared_with: list[str] | None = None,
    build_id: str | None = None,
    walk: bool = True,
) -> BuildRecord:
    """A proven build; ``walk``: through every status with conditional writes, as the
    pipeline moves it (else written in its final state at once, for big catalogs)."""
    packages = packages or {}
    spec = BuildSpec(r_version=r_version, architecture=architecture, packages=list(packages))
    build_id = (
        build_id or "b" + hashlib.sha256(f"{spec.spec_hash}{version}".encode()).hexdigest()[:15]
    )
    record = BuildRecord(
        build_id=build_id, spec_hash=spec.spec_hash, spec=spec, regions=list(regions)
    )
    layers = [_layer("runtime", spec.runtime_layer_name, regions, version, shared_with)]
    if packages:
        layers.append(_layer("packages", spec.packages_layer_name, regions, version, shared_with))
    canary = CanaryResult(r_version=r_version, packages={"jsonlite": "1.8.9", **packages})
    if not walk:
        done = record.model_copy(
            update={"status": BuildStatus.SUCCEEDED, "layers": layers, "canary": canary}
        )
        done.steps[BuildStatus.SUCCEEDED.value] = done.created_at
        store.put(
            BUILD.key(build_id),
            BUILD.encode(done.model_dump(mode="json"), created_at=done.created_at, ident=build_id),
        )
        index_build(store, done, regions[0])
        return done
    store.create_build(record, replaces=None, force=True)
    for status in (
        BuildStatus.BUILDING,
        BuildStatus.VALIDATING,
        BuildStatus.PUBLISHING,
        BuildStatus.TESTING,
    ):
        store.transition(build_id, status)
    record = store.transition(
        build_id,
        BuildStatus.SUCCEEDED,
        {
            "layers": [la.model_dump(mode="json") for la in layers],
            "canary": canary.model_dump(mode="json"),
        },
    )
    # As RecordSuccess does: the resolver finds it from here on.
    index_build(store, record, regions[0])
    return record


def _layer(
    kind: Literal["runtime", "packages"],
    name: str,
    regions: tuple[str, ...],
    version: int,
    shared: list[str] | None,
) -> LayerRef:
    versions = {r: RegionalVersion(arn=arn(r, name, version)) for r in regions}
    return LayerRef(
        kind=kind,
        name=name,
        arn=versions[regions[0]].arn,
        version=version,
        sha256="0" * 64,
        zipped_bytes=1000,
        unzipped_bytes=5000,
        regions=versions,
        shared_with=shared or [],
    )


def supersede(store: Store, old: BuildRecord, new: BuildRecord, *, days: int = 90) -> BuildRecord:
    expires = (datetime.now(UTC) + timedelta(days=days)).strftime(STAMP)
    unindex_build(store, old)
    return store.update_build(
        old.build_id,
        {"superseded_by": new.build_id, "superseded_at": expires, "expires_at": expires},
        expect=BuildStatus.SUCCEEDED,
    )


def tombstone(store: Store, old: BuildRecord, new: BuildRecord) -> BuildRecord:
    """As the expiry task leaves a build: every version deleted, each replacement named."""
    now = datetime.now(UTC).strftime(STAMP)
    supersede(store, old, new, days=0)
    layers = []
    for layer in old.layers:
        replacement = next(la for la in new.layers if la.kind == layer.kind)
        regions = {
            r: v.model_copy(update={"deleted_at": now, "replaced_by": replacement.regions[r].arn})
            for r, v in layer.regions.items()
        }
        layers.append(layer.model_copy(update={"regions": regions}).model_dump(mode="json"))
    return store.update_build(
        old.build_id, {"layers": layers, "deleted_at": now}, expect=BuildStatus.SUCCEEDED
    )
