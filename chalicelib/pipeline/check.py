"""CheckBuild and StopBuild: read the backend's progress; stop a build that ran too long."""

from __future__ import annotations

from typing import Any

from chalicelib.builders.base import BuildProgress, BuildState
from chalicelib.errors import (
    BuildFailedError,
    BuildStartError,
    BuildTimedOutError,
    TransitionRejectedError,
)
from chalicelib.models import BuildRecord, BuildStatus
from chalicelib.observability import logger
from chalicelib.pipeline.contracts import (
    CheckBuildOutput,
    StopBuildInput,
    StopBuildOutput,
    TaskInput,
)
from chalicelib.pipeline.task import Deps, task

# How much of the build's log tail goes into the recorded error.
LOG_TAIL_LINES = 15
MESSAGE_MAX = 2000
HEAD_MAX = 600


def _building(deps: Deps, build_id: str) -> tuple[BuildRecord, str]:
    record = deps.store.get_build(build_id)
    if record.status is not BuildStatus.BUILDING:
        raise TransitionRejectedError(
            f"build {build_id} is {record.status.value}; expected BUILDING", field="status"
        )
    if not record.build_ref:
        raise BuildStartError(f"build {build_id} has no started build to check")
    return record, record.build_ref


def run_check(data: TaskInput, deps: Deps) -> CheckBuildOutput:
    record, build_ref = _building(deps, data.build_id)
    progress = deps.backend_named(record.backend).check_build(build_ref)
    fields: dict[str, Any] = {}
    if progress.log_url and progress.log_url != record.log_url:
        fields["log_url"] = progress.log_url
    if progress.state is BuildState.SUCCEEDED:
        fields["artifact_location"] = progress.artifact_location or None
        deps.store.update_build(
            record.build_id,
            {k: v for k, v in fields.items() if v is not None},
            expect=BuildStatus.BUILDING,
        )
        logger.info("build succeeded", extra={"artifact_location": progress.artifact_location})
        return CheckBuildOutput(state="SUCCEEDED", phase=progress.current_phase)
    if fields:
        deps.store.update_build(record.build_id, fields, expect=BuildStatus.BUILDING)
    if progress.state is BuildState.FAILED:
        raise BuildFailedError(_explain("the build failed", progress))
    if progress.state is BuildState.TIMED_OUT:
        raise BuildTimedOutError(_explain("the build backend timed the build out", progress))
    return CheckBuildOutput(state="IN_PROGRESS", phase=progress.current_phase)


def run_stop(data: StopBuildInput, deps: Deps) -> StopBuildOutput:
    """Stop a build that outlived the poll limit; the answer is the error to record.

    Returned rather than raised: stopping is this state's job, and the ASL turns the
    answer into ``$.failed.StopBuild`` (``BuildTimedOutError``) for RecordFailure.
    """
    record, build_ref = _building(deps, data.build_id)
    deps.backend_named(record.backend).stop_build(build_ref)
    polls = f" after {data.polls} polls" if data.polls else ""
    logger.warning("build stopped: poll limit reached", extra={"build_ref": build_ref})
    return StopBuildOutput(
        error_type=BuildTimedOutError.__name__,
        message=f"the build was still running{polls}, the state machine's limit; it was stopped",
    )


def _explain(what: str, progress: BuildProgress) -> str:
    head = what + (f": {progress.reason}" if progress.reason else "")
    if progress.log_url:
        head += f" (log: {progress.log_url})"
    # A backend's reason may already quote the log's end: do not repeat those lines.
    lines = [line for line in progress.log_tail if line.strip() and line not in head]
    first, _, rest = head.partition("\n")
    first = first[:HEAD_MAX]
    body = "\n".join(part for part in (rest, *lines[-LOG_TAIL_LINES:]) if part)
    room = MESSAGE_MAX - len(first) - 2
    if body and room > 0:
        # Keep the end: the last lines of a build log say why.
        first += "\n" + (body if len(body) <= room else "…" + body[-(room - 1) :])
    return first


check_handler = task("CheckBuild", TaskInput, run_check)
stop_handler = task("StopBuild", StopBuildInput, run_stop)
