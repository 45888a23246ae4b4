"""StartBuild: start the record's build on the configured backend, once."""

from __future__ import annotations

from chalicelib.errors import BuildStartError, TransitionRejectedError
from chalicelib.models import BuildSpec, BuildStatus
from chalicelib.observability import logger
from chalicelib.pipeline.contracts import StartBuildOutput, TaskInput
from chalicelib.pipeline.task import Deps, task


def run(data: TaskInput, deps: Deps) -> StartBuildOutput:
    record = deps.store.get_build(data.build_id)
    if record.status is not BuildStatus.BUILDING:
        raise TransitionRejectedError(
            f"build {record.build_id} is {record.status.value}; StartBuild expects BUILDING",
            field="status",
        )
    # Idempotency: the record is the claim. A retried task whose first attempt got as far
    # as recording the build returns that build. The window before the record write is
    # covered by the backend (CodeBuild's idempotencyToken is the build id). Powertools'
    # Idempotency would only cache this response in a second item; it cannot close the
    # window either, so the record stays the single source of truth.
    if record.build_ref:
        logger.info("build already started", extra={"build_ref": record.build_ref})
        return StartBuildOutput(build_ref=record.build_ref)
    # The spec comes from the record and is validated again: it becomes build variables.
    spec = BuildSpec.model_validate(record.spec.model_dump())
    try:
        build_ref = deps.backend_named(record.backend).start_build(record.build_id, spec)
    except BuildStartError:
        raise
    except ValueError as exc:
        raise BuildStartError(f"the spec cannot be built: {exc}") from exc
    deps.store.update_build(record.build_id, {"build_ref": build_ref}, expect=BuildStatus.BUILDING)
    logger.info("build started", extra={"build_ref": build_ref, "backend": record.backend})
    return StartBuildOutput(build_ref=build_ref)


handler = task("StartBuild", TaskInput, run)
