"""RetireLayers: delete the layer versions this build published, in every region, before
it is failed.

A layer that did not pass its canary must not stay available anywhere. Only versions this
build published go: a reused (proven) runtime layer belongs to an earlier build and stays.
Versions are found twice over: in the record, and by the build marker in their
description in each region of the build (a version published by an attempt that died
before recording it).
"""

from __future__ import annotations

from chalicelib.aws import lambdas
from chalicelib.models import BuildStatus, LayerRef
from chalicelib.observability import logger
from chalicelib.pipeline.contracts import RetireOutput, TaskInput
from chalicelib.pipeline.publish import build_regions, layer_name
from chalicelib.pipeline.task import Deps, build_marker, task


def _retire(layer: LayerRef, home: str, retired: list[str]) -> LayerRef:
    regions = dict(layer.regions)
    if not regions and not layer.reused and not layer.retired:
        # A record from before regions were recorded: the stack's region only.
        lambdas.delete_layer_version(layer.name, layer.version, home)
        retired.append(layer.arn)
        return layer.model_copy(update={"retired": True})
    for region, version in regions.items():
        if not version.reused and not version.retired:
            lambdas.delete_layer_version(version.name, version.version, region)
            retired.append(version.arn)
            regions[region] = version.model_copy(update={"retired": True})
    home_version = regions.get(home)
    gone = home_version is not None and home_version.retired
    return layer.model_copy(update={"regions": regions, "retired": layer.retired or gone})


def run(data: TaskInput, deps: Deps) -> RetireOutput:
    record = deps.store.get_build(data.build_id)
    if record.status is BuildStatus.SUCCEEDED:
        # Proven and recorded: whatever failed afterwards, these layers are good.
        logger.warning("not retiring the layers of a succeeded build")
        return RetireOutput(retired=[])
    home = deps.settings.aws_region
    retired: list[str] = []
    layers = [_retire(layer, home, retired) for layer in record.layers]
    known = {layer.arn for layer in record.layers}
    known |= {v.arn for layer in record.layers for v in layer.regions.values()}
    marker = build_marker(record.build_id)
    for region in build_regions(record, home):
        for name in {layer_name(record, "runtime"), layer_name(record, "packages")}:
            for version in lambdas.list_layer_versions(name, region):
                arn = str(version["LayerVersionArn"])
                if arn not in known and marker in version.get("Description", ""):
                    lambdas.delete_layer_version(name, int(version["Version"]), region)
                    retired.append(arn)
    if layers != record.layers:
        deps.store.update_build(
            record.build_id,
            {"layers": [layer.model_dump(mode="json") for layer in layers]},
            expect=record.status,
        )
    logger.info("layers retired", extra={"retired": retired})
    return RetireOutput(retired=retired)


handler = task("RetireLayers", TaskInput, run)
