"""ValidateArtifact: every layer checked on its bytes before anything is published."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

from chalicelib.errors import ArtifactInvalidError
from chalicelib.models import BuildRecord, BuildStatus
from chalicelib.observability import logger
from chalicelib.pipeline.artifacts import LayerArtifact, ValidatedLayer, validate_artifacts
from chalicelib.pipeline.contracts import TaskInput, ValidatedLayerSummary, ValidateOutput
from chalicelib.pipeline.layer_view import Kind
from chalicelib.pipeline.locations import Location, manifest_name, present_kinds, zip_name
from chalicelib.pipeline.task import Deps, advance, artifact_location, task


def expected_layer_name(record: BuildRecord, kind: Kind) -> str:
    """The name the build scripts were told to write into each manifest."""
    spec = record.spec
    return spec.runtime_layer_name if kind == "runtime" else spec.packages_layer_name


def validate_location(record: BuildRecord, location: Location) -> list[ValidatedLayer]:
    with tempfile.TemporaryDirectory(prefix="rlayer-validate-") as tmp, ExitStack() as files:
        artifacts: list[LayerArtifact] = []
        missing: list[str] = []
        for kind in present_kinds(location):
            manifest = location.read(manifest_name(kind))
            dest = Path(tmp) / zip_name(kind)
            if manifest is None:
                missing.append(manifest_name(kind))
            if not location.fetch(zip_name(kind), dest):
                missing.append(zip_name(kind))
            if manifest is None or not dest.exists():
                continue
            artifacts.append(
                LayerArtifact(
                    kind=kind,
                    manifest=manifest,
                    zip_file=files.enter_context(dest.open("rb")),
                    expected_layer_name=expected_layer_name(record, kind),
                )
            )
        if missing:
            raise ArtifactInvalidError(
                f"artifact invalid: {', '.join(missing)} missing at {location}"
            )
        return validate_artifacts(record.spec, artifacts)


def run(data: TaskInput, deps: Deps) -> ValidateOutput:
    record = advance(deps.store, data.build_id, BuildStatus.VALIDATING)
    location = Location.parse(artifact_location(record, deps.settings))
    layers = validate_location(record, location)
    total = sum(layer.unzipped_bytes for layer in layers)
    logger.info("artifacts valid", extra={"unzipped_bytes": total, "location": str(location)})
    return ValidateOutput(
        layers=[
            ValidatedLayerSummary(
                kind=layer.kind,
                sha256=layer.sha256,
                zipped_bytes=layer.zipped_bytes,
                unzipped_bytes=layer.unzipped_bytes,
                file_count=layer.file_count,
            )
            for layer in layers
        ],
        total_unzipped_bytes=total,
    )


handler = task("ValidateArtifact", TaskInput, run)
