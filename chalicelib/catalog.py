"""The catalog of proven layers: builds that passed their canary, newest first, with their
ARNs per region, who they are shared with, and what retention did to them; and the
answer of the "latest" resolver (``chalicelib.distribution.latest_index``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from chalicelib.aws.store import Store
from chalicelib.distribution.principals import RegionalVersion
from chalicelib.models import Architecture, BuildRecord, BuildStatus, LayerRef

Status = Literal["current", "superseded", "deleted"]


class CatalogEntry(BaseModel):
    build_id: str
    r_version: str
    architecture: Architecture
    # The packages asked for, and every package in the layer with its version.
    requested: list[str]
    packages: dict[str, str]
    # The stack's region's ARNs (runtime first), as before regions were recorded.
    layer_arns: list[str]
    # Region -> the ARNs to attach there, in order (runtime first); deleted ones left out.
    regions: dict[str, list[str]]
    layers: list[LayerRef]
    built_at: str
    status: Status
    superseded_by: str | None = None
    expires_at: str | None = None
    deleted_at: str | None = None


class Catalog(BaseModel):
    layers: list[CatalogEntry]


class LatestLayer(BaseModel):
    kind: Literal["runtime", "packages"]
    arn: str


class LatestLayers(BaseModel):
    """``GET /layers/latest``: the layers to attach, in order."""

    r_version: str
    architecture: Architecture
    region: str
    build_id: str
    packages: dict[str, str]
    arns: list[str]
    layers: list[LatestLayer]
    shared_with: list[str] = Field(default_factory=list)
    built_at: str


def _status(record: BuildRecord) -> Status:
    if record.deleted_at:
        return "deleted"
    return "superseded" if record.superseded_by else "current"


def _live(layer: LayerRef) -> dict[str, str]:
    """Region -> ARN of the layer's versions that still exist (as far as we know)."""
    return {region: v.arn for region, v in layer.regions.items() if not (v.retired or v.deleted_at)}


def _shared(records: list[BuildRecord]) -> dict[str, list[str]]:
    """ARN -> everyone it is shared with, over every record that uses it (a runtime layer
    version shared for one spec is shared for all)."""
    found: dict[str, list[str]] = {}
    for record in records:
        for layer in record.layers:
            for arn in {layer.arn, *(v.arn for v in layer.regions.values())}:
                have = found.setdefault(arn, [])
                have.extend(p for p in layer.shared_with if p not in have)
    return found


def entry(record: BuildRecord, home: str, shared: dict[str, list[str]]) -> CatalogEntry:
    layers = [
        la.model_copy(
            update={
                "shared_with": shared.get(la.arn, la.shared_with),
                # A record from before regions were recorded: the stack's region only.
                "regions": la.regions
                or {home: RegionalVersion(arn=la.arn, reused=la.reused, retired=la.retired)},
            }
        )
        for la in record.layers
    ]
    regions: dict[str, list[str]] = {}
    for layer in layers:  # runtime first: the record keeps that order
        for region, arn in _live(layer).items():
            regions.setdefault(region, []).append(arn)
    return CatalogEntry(
        build_id=record.build_id,
        r_version=record.spec.r_version,
        architecture=record.spec.architecture,
        requested=record.spec.package_names(),
        packages=record.canary.packages if record.canary else {},
        layer_arns=[la.arn for la in layers],
        regions=regions,
        layers=layers,
        built_at=record.steps.get(BuildStatus.SUCCEEDED.value, record.updated_at),
        status=_status(record),
        superseded_by=record.superseded_by,
        expires_at=record.expires_at,
        deleted_at=record.deleted_at,
    )


def proven_builds(
    store: Store, *, r_version: str | None = None, architecture: Architecture | None = None
) -> list[BuildRecord]:
    return [
        record
        for record in store.iter_builds(BuildStatus.SUCCEEDED)
        if (not r_version or record.spec.r_version == r_version)
        and (not architecture or record.spec.architecture is architecture)
    ]


def catalog(
    store: Store,
    home: str,
    *,
    r_version: str | None = None,
    architecture: Architecture | None = None,
) -> list[CatalogEntry]:
    records = proven_builds(store)
    shared = _shared(records)
    return [
        entry(r, home, shared)
        for r in records
        if (not r_version or r.spec.r_version == r_version)
        and (not architecture or r.spec.architecture is architecture)
    ]
