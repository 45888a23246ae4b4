"""The catalog of proven layers: builds that passed their canary, newest first, with their
ARNs per region, who they are shared with, and what retention did to them; and the
"latest" resolver (the newest current layers for an R, architecture, region and packages).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from chalicelib.aws.store import Store
from chalicelib.distribution.principals import RegionalVersion
from chalicelib.errors import NotFoundError
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


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _matches(r_version: str, wanted: str) -> bool:
    """``X.Y`` is every patch of it; ``X.Y.Z`` itself."""
    if wanted.count(".") == 1:
        return r_version.startswith(wanted + ".")
    return r_version == wanted


def latest(
    entries: list[CatalogEntry],
    *,
    r_version: str,
    architecture: Architecture,
    region: str,
    packages: list[str],
) -> LatestLayers:
    """The newest current build of that spec in that region (the newest patch for X.Y),
    or NotFoundError saying what was looked for."""
    wanted = sorted(packages, key=str.lower)
    found = [
        e
        for e in entries
        if e.status == "current"
        and e.architecture is architecture
        and _matches(e.r_version, r_version)
        and region in e.regions
        and sorted(e.requested, key=str.lower) == wanted
    ]
    if not found:
        what = ", ".join(packages) if packages else "no packages"
        raise NotFoundError(
            f"no proven layers for R {r_version} on {architecture.value} in {region} with "
            f"{what}; request a build of that spec (POST /builds, rlayer build)",
            field="r_version",
        )
    best = max(found, key=lambda e: (_version_key(e.r_version), e.built_at))
    arns = best.regions[region]
    kinds = {
        arn: layer.kind
        for layer in best.layers
        for arn in {layer.arn, *(v.arn for v in layer.regions.values())}
    }
    shared = [p for layer in best.layers for p in layer.shared_with]
    return LatestLayers(
        r_version=best.r_version,
        architecture=best.architecture,
        region=region,
        build_id=best.build_id,
        packages=best.packages,
        arns=arns,
        layers=[LatestLayer(kind=kinds[arn], arn=arn) for arn in arns],
        shared_with=list(dict.fromkeys(shared)),
        built_at=best.built_at,
    )
