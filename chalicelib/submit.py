"""Turning a validated build request into a record and an execution.

The one path every entry point takes (HTTP, Slack, the release scheduler), so that they
share de-duplication: the same spec while a build of it is queued, running or succeeded
answers with that build instead of starting another.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.aws import stepfunctions
from chalicelib.aws.faults import as_error
from chalicelib.aws.store import CallerSlot, Store
from chalicelib.distribution import requests as distribution
from chalicelib.errors import (
    ConflictError,
    NotFoundError,
    RequestInvalidError,
    TooManyBuildsError,
    TransitionRejectedError,
)
from chalicelib.models import (
    BuildRecord,
    BuildRequest,
    BuildStatus,
    ErrorInfo,
    NotifyTarget,
    Source,
    utcnow,
)
from chalicelib.observability import bind_build, logger, metrics
from chalicelib.packages import closure_for
from chalicelib.settings import Settings

# Racing requests re-read after losing the conditional write; a few rounds always settle.
_ATTEMPTS = 5


def new_build_id() -> str:
    # Sortable by time, unique, and a valid Step Functions execution name.
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def submit_build(
    request: BuildRequest,
    *,
    store: Store,
    settings: Settings,
    source: Source = "api",
    notify: NotifyTarget | None = None,
    subscription_id: str | None = None,
    caller: str | None = None,
) -> tuple[BuildRecord, bool]:
    """Return (build, created). ``created`` is False when an existing build answered.

    ``caller`` (None for the scheduler) may have at most ``settings.max_builds_per_caller``
    builds in flight; a new one beyond that is TooManyBuildsError. A request answered by a
    running build of its spec does not count: it starts nothing.
    """
    spec = request.spec()
    refused = settings.r_versions_refused.get(spec.r_version)
    if refused is not None:
        raise RequestInvalidError(f"r_version: {refused}", field="r_version")
    offered = settings.buildable_r_versions()
    if offered and spec.r_version not in offered:
        raise RequestInvalidError(
            f"r_version: this stack builds R {', '.join(offered)}; {spec.r_version} is not "
            "among them",
            field="r_version",
        )
    backend = request.backend or settings.build_backend
    if backend not in settings.allowed_backends():
        raise RequestInvalidError(
            f"backend: this stage builds on {', '.join(settings.allowed_backends())}; "
            f"{backend!r} is not among them",
            field="backend",
        )
    # Unknown packages, unavailable pins, libraries Lambda's OS lacks: refused before any
    # record exists (a 400 naming ``packages``).
    closure_for(spec, settings.cran_repo)
    regions, share = distribution.resolve(request, settings)
    for _ in range(_ATTEMPTS):
        stale: str | None = None
        if not request.force:
            existing_id = store.spec_build_id(spec.spec_hash)
            if existing_id is not None:
                try:
                    existing = store.get_build(existing_id)
                except NotFoundError:
                    existing = None
                if existing is not None and existing.status is BuildStatus.SUCCEEDED:
                    # Proven where asked, for fewer principals: granted now, no rebuild.
                    existing = distribution.share_proven(store, existing, regions, share)
                if existing is not None and existing.status is not BuildStatus.FAILED:
                    if not distribution.covers(existing, regions, share):
                        if not existing.status.is_final:
                            raise ConflictError(
                                f"build {existing_id} of this spec is running for other "
                                "regions or principals; ask again when it has ended"
                            )
                    else:
                        logger.info("duplicate spec", extra={"existing_build_id": existing_id})
                        return _watch(existing, notify, store=store), False
                # Failed, or proven for fewer regions or principals (the new build then
                # goes everywhere asked and, once proven, supersedes it).
                stale = existing_id
        build_id = new_build_id()
        slot = _caller_slot(store, caller, settings.max_builds_per_caller)
        record = BuildRecord(
            build_id=build_id,
            # Known before the start, so the record written first already links to it.
            execution_arn=stepfunctions.execution_arn(settings.state_machine_arn, build_id),
            spec_hash=spec.spec_hash,
            spec=spec,
            layer_name=request.layer_name,
            description=request.description,
            source=source,
            notify=notify,
            subscription_id=subscription_id,
            requested_by=caller,
            backend=backend,
            regions=regions,
            share=share,
        )
        try:
            store.create_build(record, replaces=stale, force=request.force, caller=slot)
        except ConflictError:
            continue
        return _start(record, store=store, settings=settings), True
    raise ConflictError("this spec is being requested concurrently; try again")


def _caller_slot(store: Store, caller: str | None, limit: int) -> CallerSlot | None:
    """The caller's place for one more build, or TooManyBuildsError."""
    if caller is None or limit == 0:
        return None
    slot = store.caller_slot(caller)
    running = tuple(b for b in slot.build_ids if _in_flight(store, b))
    if len(running) >= limit:
        raise TooManyBuildsError(
            f"you have {len(running)} builds in flight, the most one caller may have "
            f"({', '.join(running)}); ask again when one of them has ended"
        )
    # Ended builds leave the list here, so it never holds more than ``limit`` ids.
    return CallerSlot(caller, slot.version, running)


def _in_flight(store: Store, build_id: str) -> bool:
    try:
        return not store.get_build(build_id).status.is_final
    except NotFoundError:
        return False


def _watch(record: BuildRecord, notify: NotifyTarget | None, *, store: Store) -> BuildRecord:
    """Add this requester to those told when the running build ends; return the record."""
    if notify is None or record.status.is_final:
        return record
    if any(t.same_requester(notify) for t in record.notify_targets()):
        return record
    try:
        return store.add_watcher(
            record.build_id, notify.model_copy(update={"requested_at": utcnow()})
        )
    except TransitionRejectedError:
        # It ended meanwhile (the answer then carries the result) or has enough watchers.
        logger.info("watcher not added", extra={"existing_build_id": record.build_id})
        return store.get_build(record.build_id)


def _start(record: BuildRecord, *, store: Store, settings: Settings) -> BuildRecord:
    bind_build(record.build_id)
    try:
        stepfunctions.start_execution(
            settings.state_machine_arn, record.build_id, {"build_id": record.build_id}
        )
    except Exception as exc:
        # The record exists; it must not stay QUEUED forever with no execution behind it.
        error = as_error(exc)
        store.transition(
            record.build_id,
            BuildStatus.FAILED,
            {
                "error": ErrorInfo(
                    step="StartExecution", error_type=type(error).__name__, message=error.message
                ).model_dump()
            },
        )
        if error is exc:
            raise
        raise error from exc
    metrics.add_metric(name="BuildsRequested", unit=MetricUnit.Count, value=1)
    logger.info("build queued", extra={"spec_hash": record.spec_hash})
    return record
