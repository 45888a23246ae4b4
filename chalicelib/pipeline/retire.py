"""RetireLayers: delete the layer versions this build published, before it is failed.

A layer that did not pass its canary must not stay available. Only versions this build
published go: a reused (proven) runtime layer belongs to an earlier build and stays.
Versions are found twice over: in the record, and by the build marker in their
description (a version published by an attempt that died before recording it).
"""

from __future__ import annotations

from chalicelib.aws import lambdas
from chalicelib.models import BuildStatus, LayerRef
from chalicelib.observability import logger
from chalicelib.pipeline.contracts import RetireOutput, TaskInput
from chalicelib.pipeline.publish import layer_name
from chalicelib.pipeline.task import Deps, build_marker, task


def run(data: TaskInput, deps: Deps) -> RetireOutput:
    record = deps.store.get_build(data.build_id)
    if record.status is BuildStatus.SUCCEEDED:
        # Proven and recorded: whatever failed afterwards, these layers are good.
        logger.warning("not retiring the layers of a succeeded build")
        return RetireOutput(retired=[])
    retired: list[str] = []
    layers: list[LayerRef] = []
    for layer in record.layers:
        if not layer.reused and not layer.retired:
            lambdas.delete_layer_version(layer.name, layer.version)
            retired.append(layer.arn)
            layer = layer.model_copy(update={"retired": True})
        layers.append(layer)
    known = {layer.arn for layer in record.layers}
    marker = build_marker(record.build_id)
    for name in {layer_name(record, "runtime"), layer_name(record, "packages")}:
        for version in lambdas.list_layer_versions(name):
            arn = str(version["LayerVersionArn"])
            if arn not in known and marker in version.get("Description", ""):
                lambdas.delete_layer_version(name, int(version["Version"]))
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
