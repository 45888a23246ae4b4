"""The catalog routes' ``?format=csv``: one row per layer version (per region)."""

from __future__ import annotations

import csv
import io

from chalicelib.catalog import CatalogEntry, LatestLayers

CATALOG_COLUMNS = (
    "build_id",
    "status",
    "r_version",
    "architecture",
    "region",
    "kind",
    "arn",
    "requested",
    "built_at",
    "expires_at",
    "deleted_at",
    "replaced_by",
    "shared_with",
)
LATEST_COLUMNS = ("order", "kind", "arn", "region", "r_version", "architecture", "build_id")


def _text(rows: list[dict[str, object]], columns: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def catalog_csv(entries: list[CatalogEntry]) -> str:
    rows: list[dict[str, object]] = []
    for e in entries:
        for layer in e.layers:
            versions = layer.regions or {}
            for region, version in sorted(versions.items()):
                rows.append(
                    {
                        "build_id": e.build_id,
                        "status": e.status,
                        "r_version": e.r_version,
                        "architecture": e.architecture.value,
                        "region": region,
                        "kind": layer.kind,
                        "arn": version.arn,
                        "requested": " ".join(e.requested),
                        "built_at": e.built_at,
                        "expires_at": e.expires_at or "",
                        "deleted_at": version.deleted_at or "",
                        "replaced_by": version.replaced_by or "",
                        "shared_with": " ".join(layer.shared_with),
                    }
                )
    return _text(rows, CATALOG_COLUMNS)


def latest_csv(found: LatestLayers) -> str:
    rows: list[dict[str, object]] = [
        {
            "order": i,
            "kind": layer.kind,
            "arn": layer.arn,
            "region": found.region,
            "r_version": found.r_version,
            "architecture": found.architecture.value,
            "build_id": found.build_id,
        }
        for i, layer in enumerate(found.layers, start=1)
    ]
    return _text(rows, LATEST_COLUMNS)
