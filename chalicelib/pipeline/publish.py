"""PublishLayers: the validated zips become Lambda layer versions (from S3), once each, in
every region of the build (``chalicelib.distribution.regional``)."""

from __future__ import annotations

from chalicelib.aws import s3
from chalicelib.builders.base import artifact_prefix
from chalicelib.distribution.principals import RegionalVersion
from chalicelib.distribution.regional import Publication, publish_in, reusable
from chalicelib.errors import ArtifactInvalidError, PublishError
from chalicelib.models import (
    LAMBDA_DESCRIPTION_MAX,
    BuildRecord,
    BuildStatus,
    LayerManifest,
    LayerRef,
)
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


def build_regions(record: BuildRecord, home: str) -> list[str]:
    """The regions of a build, the stack's own first (older records: that one only)."""
    return [home, *(r for r in record.regions if r != home)]


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
    if not s3.exists(bucket, key):
        s3.upload(location.directory / zip_name(kind), bucket, key)
    return bucket, key


def _publication(
    record: BuildRecord, deps: Deps, location: Location, kind: Kind, manifest: LayerManifest
) -> Publication:
    bucket, key = _s3_object(record, deps, location, kind)
    return Publication(
        name=layer_name(record, kind),
        description=describe(record, kind, manifest),
        architecture=record.spec.architecture.value,
        license_info=R_LICENSE if kind == "runtime" else PACKAGES_LICENSE,
        marker=build_marker(record.build_id),
        bucket=bucket,
        key=key,
        sha256=manifest.sha256,
    )


def _proven_runtime(record: BuildRecord, deps: Deps, manifest: LayerManifest) -> dict[str, str]:
    """Region -> the proven runtime version this build may reuse there (same recipe, same
    bytes, still published)."""
    proven = runtimes.get_proven(deps.store, record.spec.r_version, record.spec.architecture)
    if proven is None or proven.recipe_hash != manifest.recipe_hash:
        return {}
    if proven.sha256 != manifest.sha256:
        return {}
    home = deps.settings.aws_region
    found = {r: proven.arn_in(r, home) for r in build_regions(record, home)}
    return {r: arn for r, arn in found.items() if arn and reusable(arn, manifest.sha256)}


def _layer(
    record: BuildRecord,
    deps: Deps,
    location: Location,
    kind: Kind,
    earlier: LayerRef | None,
) -> LayerRef:
    """The layer in every region; recorded after each, so RetireLayers knows them all."""
    manifest = _manifest(location, kind)
    home = deps.settings.aws_region
    done = dict(earlier.regions) if earlier else {}
    if earlier is not None and not done:
        # Recorded before regions were: the stack's region only.
        done[home] = RegionalVersion(arn=earlier.arn, reused=earlier.reused)
    reuse = _proven_runtime(record, deps, manifest) if kind == "runtime" else {}
    pub: Publication | None = None
    for region in build_regions(record, home):
        if region in done:
            continue
        if region in reuse:
            done[region] = RegionalVersion(arn=reuse[region], reused=True)
        else:
            pub = pub or _publication(record, deps, location, kind, manifest)
            done[region] = publish_in(pub, region, deps.settings)
        record = _save(record, deps, _ref(kind, manifest, layer_name(record, kind), done, home))
    return _ref(kind, manifest, layer_name(record, kind), done, home)


def _ref(
    kind: Kind,
    manifest: LayerManifest,
    name: str,
    regions: dict[str, RegionalVersion],
    home: str,
) -> LayerRef:
    main = regions[home]
    return LayerRef(
        kind=kind,
        name=name,
        arn=main.arn,
        version=main.version,
        sha256=manifest.sha256,
        zipped_bytes=manifest.zipped_bytes,
        unzipped_bytes=manifest.unzipped_bytes,
        reused=main.reused,
        recipe_hash=manifest.recipe_hash,
        regions=regions,
    )


def _save(record: BuildRecord, deps: Deps, ref: LayerRef) -> BuildRecord:
    layers = [la for la in record.layers if la.kind != ref.kind] + [ref]
    layers.sort(key=lambda la: la.kind != "runtime")
    return deps.store.update_build(
        record.build_id,
        {"layers": [layer.model_dump(mode="json") for layer in layers]},
        expect=BuildStatus.PUBLISHING,
    )


def run(data: TaskInput, deps: Deps) -> PublishOutput:
    record = advance(deps.store, data.build_id, BuildStatus.PUBLISHING)
    location = Location.parse(artifact_location(record, deps.settings))
    # What an earlier attempt of this task published and recorded stays as it is; the
    # regions it did not reach are published now.
    for kind in present_kinds(location):
        earlier = next((la for la in record.layers if la.kind == kind), None)
        _layer(record, deps, location, kind, earlier)
        record = deps.store.get_build(record.build_id)
    layers = record.layers
    if not any(layer.kind == "runtime" for layer in layers):
        raise PublishError("no runtime layer was published or reused")
    return PublishOutput(
        layers=[PublishedSummary(kind=lr.kind, arn=lr.arn, reused=lr.reused) for lr in layers]
    )


handler = task("PublishLayers", TaskInput, run)
