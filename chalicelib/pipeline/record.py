"""RecordSuccess and RecordFailure: the build's final status, written once."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.distribution.latest_index import index_build
from chalicelib.distribution.retention import supersede
from chalicelib.distribution.sharing import share_layer
from chalicelib.errors import CanaryFailedError, TransitionRejectedError
from chalicelib.models import BuildStatus, ErrorInfo
from chalicelib.observability import logger, metrics
from chalicelib.pipeline import runtimes
from chalicelib.pipeline.contracts import FinalOutput, RecordFailureInput, TaskInput
from chalicelib.pipeline.task import Deps, task

# States whose failure is a consequence, not the cause (listed after the cause).
_FOLLOW_UPS = ("RetireLayers", "RecordFailure")
MESSAGE_MAX = 4000


def run_success(data: TaskInput, deps: Deps) -> FinalOutput:
    record = deps.store.get_build(data.build_id)
    if record.status is BuildStatus.SUCCEEDED:
        return FinalOutput(status=record.status)  # a retried task
    if record.canary is None:
        raise CanaryFailedError("no canary result recorded; the layers are not proven")
    # Proven: shared as asked (before the final status, like the proven runtime below; a
    # reused runtime's grants are everyone's who use it, read back into this record).
    layers = [share_layer(la, record.share) for la in record.layers]
    if layers != record.layers:
        record = deps.store.update_build(
            record.build_id,
            {"layers": [la.model_dump(mode="json") for la in layers]},
            expect=BuildStatus.TESTING,
        )
    runtime = next((la for la in record.layers if la.kind == "runtime"), None)
    if runtime is not None and not runtime.reused and runtime.recipe_hash:
        # Before the final status: if this write fails, the build fails and RetireLayers
        # deletes the layer, and reuse checks that a proven layer still exists.
        runtimes.put_proven(
            deps.store,
            r_version=record.spec.r_version,
            architecture=record.spec.architecture,
            layer=runtime,
            build_id=record.build_id,
        )
    record = deps.store.transition(record.build_id, BuildStatus.SUCCEEDED)
    # Earlier proven builds of the spec now expire (their versions stay until then). The
    # build is proven whatever happens here: the expiry task makes up what was not written.
    try:
        index_build(deps.store, record, deps.settings.aws_region)
        supersede(deps.store, record, deps.settings)
    except Exception:
        logger.exception("indexing or superseding failed; the expiry task will")
    metrics.add_metric(name="BuildsSucceeded", unit=MetricUnit.Count, value=1)
    logger.info("build succeeded", extra={"layers": [la.arn for la in record.layers]})
    return FinalOutput(status=record.status)


def failure_info(data: RecordFailureInput) -> ErrorInfo:
    """The failure to record: the state that failed first, then what failed after it."""
    causes = [s for s in data.failed if s not in _FOLLOW_UPS]
    follow_ups = [s for s in data.failed if s in _FOLLOW_UPS]
    order = causes + follow_ups
    if not order:
        return ErrorInfo(step="unknown", error_type="States.Unknown", message="no error given")
    step = order[0]
    caught = data.failed[step]
    message = caught.message()
    for later in order[1:]:
        message += f"; then {later} failed too: {data.failed[later].error}: "
        message += data.failed[later].message()
    return ErrorInfo(step=step, error_type=caught.error, message=message[:MESSAGE_MAX])


def run_failure(data: RecordFailureInput, deps: Deps) -> FinalOutput:
    error = failure_info(data)
    try:
        record = deps.store.transition(
            data.build_id, BuildStatus.FAILED, {"error": error.model_dump(mode="json")}
        )
    except TransitionRejectedError:
        record = deps.store.get_build(data.build_id)
        if not record.status.is_final:
            raise
        logger.warning("build already final", extra={"status": record.status.value})
        return FinalOutput(status=record.status)
    metrics.add_metric(name="BuildsFailed", unit=MetricUnit.Count, value=1)
    logger.info(
        "build failed",
        extra={"step": error.step, "error_type": error.error_type, "reason": error.message},
    )
    return FinalOutput(status=record.status)


success_handler = task("RecordSuccess", TaskInput, run_success)
failure_handler = task("RecordFailure", RecordFailureInput, run_failure)
