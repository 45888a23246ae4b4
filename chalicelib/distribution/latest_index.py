"""The resolver's index: one item per (architecture, R X.Y, package set) holding the current
build of each patch release, so ``GET /layers/latest`` is one read whatever the catalog's
size (a scan of every proven build would grow with it).

Written when a build is proven (RecordSuccess), its entry removed when it is superseded
(only if the entry is still that build's), and rewritten for every current build by the
expiry task, which repairs whatever a failed write left out.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chalicelib.aws.items import LATEST
from chalicelib.aws.store import Store
from chalicelib.catalog import LatestLayer, LatestLayers
from chalicelib.errors import NotFoundError
from chalicelib.models import Architecture, BuildRecord, BuildStatus

FIELD = "builds"


def line_key(architecture: Architecture, r_version: str, packages: list[str]) -> str:
    minor = ".".join(r_version.split(".")[:2])
    names = ",".join(sorted({p.lower() for p in packages}))
    digest = hashlib.sha256(names.encode()).hexdigest()[:16]
    return LATEST.key(architecture.value, minor, digest)


def _key(record: BuildRecord) -> str:
    return line_key(record.spec.architecture, record.spec.r_version, record.spec.package_names())


def _entry(record: BuildRecord, home: str) -> dict[str, Any]:
    regions: dict[str, list[dict[str, str]]] = {}
    for layer in record.layers:  # runtime first
        versions = layer.regions or {}
        if not versions and not layer.retired:
            regions.setdefault(home, []).append({"kind": layer.kind, "arn": layer.arn})
        for region, version in versions.items():
            if not (version.retired or version.deleted_at):
                regions.setdefault(region, []).append({"kind": layer.kind, "arn": version.arn})
    shared = [p for layer in record.layers for p in layer.shared_with]
    return {
        "build_id": record.build_id,
        "r_version": record.spec.r_version,
        "built_at": record.steps.get(BuildStatus.SUCCEEDED.value, record.updated_at),
        "packages": record.canary.packages if record.canary else {},
        "regions": regions,
        "shared_with": list(dict.fromkeys(shared)),
    }


def index_build(store: Store, record: BuildRecord, home: str) -> None:
    """Make a proven, current build the one its patch release resolves to."""
    store.set_in_map(_key(record), FIELD, record.spec.r_version, _entry(record, home))


def unindex_build(store: Store, record: BuildRecord) -> None:
    """Take a superseded build out, unless its patch release resolves to another already."""
    store.set_in_map(
        _key(record), FIELD, record.spec.r_version, None, unless=("build_id", record.build_id)
    )


def _patch(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def lookup(
    store: Store,
    *,
    r_version: str,
    architecture: Architecture,
    region: str,
    packages: list[str],
) -> LatestLayers:
    """The newest current layers of that spec in that region (X.Y: its newest patch)."""
    item = store.get_item(line_key(architecture, r_version, packages), consistent=False)
    builds: dict[str, dict[str, Any]] = (item or {}).get(FIELD, {})
    exact = r_version.count(".") == 2
    found = [
        b
        for version, b in builds.items()
        if (version == r_version or not exact) and region in b.get("regions", {})
    ]
    if not found:
        what = ", ".join(packages) if packages else "no packages"
        raise NotFoundError(
            f"no proven layers for R {r_version} on {architecture.value} in {region} with "
            f"{what}; request a build of that spec (POST /builds, rlayer build)",
            field="r_version",
        )
    best = max(found, key=lambda b: _patch(str(b["r_version"])))
    layers = [LatestLayer.model_validate(la) for la in best["regions"][region]]
    return LatestLayers(
        r_version=best["r_version"],
        architecture=architecture,
        region=region,
        build_id=best["build_id"],
        packages=best.get("packages", {}),
        arns=[la.arn for la in layers],
        layers=layers,
        shared_with=best.get("shared_with", []),
        built_at=best["built_at"],
    )
