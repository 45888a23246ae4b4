"""PublishLayers: the validated zips become Lambda layer versions (from S3), once each."""

from __future__ import annotations

import base64
from typing import Any

from chalicelib.aws import lambdas, s3
from chalicelib.builders.base import artifact_prefix
from chalicelib.errors import ArtifactInvalidError, PublishError
from chalicelib.models import (
    LAMBDA_DESCRIPTION_MAX,
    BuildRecord,
    BuildStatus,
    LayerManifest,
    LayerRef,
)
from chalicelib.observability import logger
from chalicelib.pipeline import runtimes
from chalicelib.pipeline.contracts import PublishedSummary, PublishOutput, TaskInput
from chalicelib.pipeline.layer_view import Kind
from chalicelib.pipeline.locations import Location, manifest_name, present_kinds, zip_name
from chalicelib.pipeline.task import Deps, advance, artifact_location, build_marker, task

R_LICENSE = "GPL-2 | GPL-3"
# Each package has its own licence; the layer as a whole can only point at them.
PACKAGES_LICENSE = "Per package: see packages/library/<package>/DESCRIPTION (R: GPL-2 | GPL-3)"


def layer_name(record: BuildRecord, kind: Kind) -> str:
    if kind == "runtime":
        return record.spec.runtime_layer_name
    if record.layer_name:
        # Every layer rlayer publishes is named r-*: the deployed policy is scoped to that.
        name = record.layer_name
        return name if name.startswith("r-") else f"r-{name}"
    return record.spec.packages_layer_name


def describe(record: BuildRecord, kind: Kind, manifest: LayerManifest) -> str:
    """At most 256 characters, always ending with the build marker (see build_marker)."""
    spec = record.spec
    if kind == "runtime":
        recipe = manifest.recipe_hash[:12]
        body = f"R {spec.r_version} ({spec.architecture.value}) runtime, recipe {recipe}"
    elif record.description:
        body = record.description
    else:
        pkgs = ", ".join(f"{n} {v}" for n, v in sorted(manifest.packages.items()))
        body = f"R {spec.r_version} ({spec.architecture.value}) packages: {pkgs}"
    marker = build_marker(record.build_id)
    room = LAMBDA_DESCRIPTION_MAX - len(marker) - 1
    if len(body) > room:
        body = body[: room - 1].rstrip(" ,") + "…"
    return f"{body} {marker}"


def _manifest(location: Location, kind: Kind) -> LayerManifest:
    raw = location.read(manifest_name(kind))
    if raw is None:
        raise ArtifactInvalidError(f"{manifest_name(kind)} vanished from {location}")
    return LayerManifest.model_validate_json(raw)


def _s3_object(record: BuildRecord, deps: Deps, location: Location, kind: Kind) -> tuple[str, str]:
    """Where Lambda reads the zip from; local artifacts are uploaded first (S3 only)."""
    if location.bucket is not None:
        return location.bucket, location.prefix + zip_name(kind)
    assert location.directory is not None
    bucket = deps.settings.artifact_bucket
    key = artifact_prefix(record.build_id) + zip_name(kind)
    s3.upload(location.directory / zip_name(kind), bucket, key)
    return bucket, key


def _reusable_runtime(record: BuildRecord, deps: Deps, manifest: LayerManifest) -> LayerRef | None:
    proven = runtimes.get_proven(deps.store, record.spec.r_version, record.spec.architecture)
    if proven is None:
        return None
    if proven.recipe_hash != manifest.recipe_hash or proven.sha256 != manifest.sha256:
        logger.info("proven runtime differs; publishing", extra={"proven": proven.arn})
        return None
    if lambdas.get_layer_version(proven.arn) is None:
        logger.warning("proven runtime layer was deleted; publishing", extra={"arn": proven.arn})
        return None
    return LayerRef(
        kind="runtime",
        name=proven.layer_name,
        arn=proven.arn,
        version=proven.version,
        sha256=proven.sha256,
        zipped_bytes=proven.zipped_bytes,
        unzipped_bytes=proven.unzipped_bytes,
        reused=True,
        recipe_hash=proven.recipe_hash,
    )


def _sha_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _publish(
    record: BuildRecord, deps: Deps, location: Location, kind: Kind, manifest: LayerManifest
) -> LayerRef:
    name = layer_name(record, kind)
    marker = build_marker(record.build_id)
    # A version this build published in an attempt that died before recording it.
    earlier = [v for v in lambdas.list_layer_versions(name) if marker in v.get("Description", "")]
    if earlier:
        newest = max(earlier, key=lambda v: int(v["Version"]))
        found: dict[str, Any] = lambdas.get_layer_version(newest["LayerVersionArn"]) or {}
        arn, version = str(newest["LayerVersionArn"]), int(newest["Version"])
        code_sha = str(found.get("Content", {}).get("CodeSha256", ""))
        logger.info("adopting a version published by an earlier attempt", extra={"arn": arn})
    else:
        bucket, key = _s3_object(record, deps, location, kind)
        published = lambdas.publish_layer_version(
            name=name,
            bucket=bucket,
            key=key,
            description=describe(record, kind, manifest),
            architecture=record.spec.architecture.value,
            license_info=R_LICENSE if kind == "runtime" else PACKAGES_LICENSE,
        )
        arn, version, code_sha = published.arn, published.version, published.code_sha256_b64
    if code_sha != _sha_b64(manifest.sha256):
        # Not the bytes that were validated (the object changed in between): withdraw it.
        lambdas.delete_layer_version(name, version)
        raise PublishError(
            f"{arn}: Lambda measured sha256 {code_sha}, the validated artifact is "
            f"{_sha_b64(manifest.sha256)}; the version was deleted"
        )
    logger.info("layer published", extra={"arn": arn, "kind": kind})
    return LayerRef(
        kind=kind,
        name=name,
        arn=arn,
        version=version,
        sha256=manifest.sha256,
        zipped_bytes=manifest.zipped_bytes,
        unzipped_bytes=manifest.unzipped_bytes,
        recipe_hash=manifest.recipe_hash,
    )


def run(data: TaskInput, deps: Deps) -> PublishOutput:
    record = advance(deps.store, data.build_id, BuildStatus.PUBLISHING)
    location = Location.parse(artifact_location(record, deps.settings))
    # Layers an earlier attempt of this task already published and recorded stay as they are.
    layers = list(record.layers)
    done = {layer.kind for layer in layers}
    for kind in present_kinds(location):
        if kind in done:
            continue
        manifest = _manifest(location, kind)
        ref = _reusable_runtime(record, deps, manifest) if kind == "runtime" else None
        if ref is None:
            ref = _publish(record, deps, location, kind, manifest)
        layers.append(ref)
        # Recorded at once, so RetireLayers knows about it even if the next one fails.
        record = deps.store.update_build(
            record.build_id,
            {"layers": [layer.model_dump(mode="json") for layer in layers]},
            expect=BuildStatus.PUBLISHING,
        )
    if not any(layer.kind == "runtime" for layer in layers):
        raise PublishError("no runtime layer was published or reused")
    return PublishOutput(
        layers=[PublishedSummary(kind=lr.kind, arn=lr.arn, reused=lr.reused) for lr in layers]
    )


handler = task("PublishLayers", TaskInput, run)
