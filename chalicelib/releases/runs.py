"""Release checks requested through the API: recorded, run by the check function, one at
a time.

``POST /releases/check`` writes a RUNNING run (``RELCHECK#<id>``) and points the one lock
item at it in the same transaction, then queues an invocation of the scheduled check's own
function (InvocationType Event) with an EventBridge-shaped event naming the run. That
function runs the check and records SUCCEEDED with the result, or FAILED with the reason,
and frees the lock. So:

- a request while a run holds the lock is answered with that run (no second check);
- if the invocation cannot be queued, the request fails, and the run is recorded FAILED
  with the reason as the lock is freed (together): no RUNNING record is left behind for
  a check that never started;
- a run still RUNNING past its deadline (its function died, or its event waited too long)
  counts as FAILED: it is recorded so when read, and the lock it held may be taken over.
  A late invocation then finds it no longer RUNNING and does nothing.

The scheduled runs (EventBridge) neither take the lock nor record a run: the check is safe
to overlap (see ``chalicelib.releases.check``), the lock only keeps requests from piling up.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from chalicelib.aws import lambdas
from chalicelib.aws.faults import as_error
from chalicelib.aws.items import RELEASE_CHECK, RELEASE_CHECK_LOCK
from chalicelib.aws.store import Store
from chalicelib.errors import ConflictError, NotFoundError, RLayerError
from chalicelib.models import utcnow
from chalicelib.observability import logger
from chalicelib.releases.check import CheckResult, check_releases, run_release_check
from chalicelib.settings import Settings

CHECK_ID_RE = re.compile(r"^chk-[0-9a-f]{12}$")
# How the API's event is told from EventBridge's schedule by the function.
EVENT_SOURCE = "rlayer.api"
EVENT_DETAIL_TYPE = "Release check requested"
LOCK_KEY = RELEASE_CHECK_LOCK.key("current")
# Runs are kept this long (the table's ttl), long enough to read an outcome later.
KEEP_S = 30 * 86400
# Attempts at taking the lock when other requests keep changing it under us.
CLAIM_ATTEMPTS = 3

CheckState = Literal["RUNNING", "SUCCEEDED", "FAILED"]


class CheckRun(BaseModel):
    """One release check requested through the API, as recorded."""

    check_id: str
    state: CheckState
    requested_at: str
    requested_by: str | None = None
    # Still RUNNING after this, the run counts as FAILED.
    deadline: str
    finished_at: str | None = None
    result: CheckResult | None = None
    error_type: str | None = None
    error: str | None = None

    def overdue(self, now: float | None = None) -> bool:
        return self.state == "RUNNING" and _epoch(self.deadline) < (now or time.time())


def new_check_id() -> str:
    return f"chk-{secrets.token_hex(6)}"


def request_check(store: Store, settings: Settings, *, requested_by: str) -> tuple[CheckRun, bool]:
    """Start a check, or answer with the one running: (the run, True when started here)."""
    for _ in range(CLAIM_ATTEMPTS):
        holder = store.lock_holder(LOCK_KEY)
        if holder is not None:
            current = get_run(store, holder)
            if current is not None and current.state == "RUNNING":
                return current, False
        run = _new_run(settings, requested_by)
        data = {
            **run.model_dump(mode="json"),
            "ttl": int(time.time()) + KEEP_S,
        }
        if store.claim(
            LOCK_KEY, run.check_id, expect_holder=holder, pk=_key(run.check_id), data=data
        ):
            break
    else:
        raise ConflictError("other release check requests keep racing this one; ask again")
    try:
        lambdas.invoke_async(settings.release_check_function_name(), check_event(run, settings))
    except Exception as exc:
        _undo(store, run, exc)
        raise
    logger.info("release check requested", extra={"check_id": run.check_id})
    return run, True


def get_run(store: Store, check_id: str) -> CheckRun | None:
    """The run as recorded; one RUNNING past its deadline is recorded FAILED first."""
    item = store.get_item(_key(check_id))
    if item is None:
        return None
    run = CheckRun.model_validate(RELEASE_CHECK.decode(item))
    if run.overdue():
        return _expire(store, run)
    return run


def find_run(store: Store, check_id: str) -> CheckRun:
    run = get_run(store, check_id)
    if run is None:
        raise NotFoundError(f"no release check with id {check_id!r}", field="check_id")
    return run


def check_event(run: CheckRun, settings: Settings) -> bytes:
    """The event the check function gets: EventBridge's shape (Chalice's schedule handler
    reads it so), with the run's id in ``detail``."""
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": EVENT_DETAIL_TYPE,
        "source": EVENT_SOURCE,
        "account": "",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": settings.aws_region,
        "resources": [],
        "detail": {"check_id": run.check_id},
    }
    return json.dumps(event).encode()


def on_check_event(event: dict[str, Any], store: Store, settings: Settings) -> dict[str, Any]:
    """The check function: a requested run (the API's event), else the scheduled check."""
    if event.get("source") == EVENT_SOURCE:
        check_id = (event.get("detail") or {}).get("check_id")
        if not (isinstance(check_id, str) and CHECK_ID_RE.match(check_id)):
            # Never a check nobody recorded: that is the schedule's alone.
            logger.warning("release check event without a check id", extra={"event": event})
            return {"check_id": None, "state": None}
        run = run_requested(store, settings, check_id)
        return run.model_dump(mode="json") if run else {"check_id": check_id, "state": None}
    # A bad feed is logged and returned, never raised: the next run simply tries again.
    return run_release_check(store, settings).model_dump(mode="json")


def run_requested(store: Store, settings: Settings, check_id: str) -> CheckRun | None:
    """Run the check for a recorded run and record how it ended.

    Never raises for the check's own failure: it is recorded, and an exception would only
    make Lambda invoke the function again for a run that is already over.
    """
    run = get_run(store, check_id)
    if run is None or run.state != "RUNNING":
        # A repeated or late event (Lambda retries; a run expired meanwhile).
        logger.warning(
            "release check event for a run that is not running; nothing done",
            extra={"check_id": check_id, "state": run.state if run else None},
        )
        return run
    fields: dict[str, Any]
    try:
        result = check_releases(store, settings)
    except Exception as exc:
        error = as_error(exc)
        log = logger.warning if isinstance(exc, RLayerError) else logger.exception
        log("release check failed", extra={"check_id": check_id, "error": error.message})
        fields = {"state": "FAILED", "error_type": type(error).__name__, "error": _reason(error)}
    else:
        fields = {"state": "SUCCEEDED", "result": result.model_dump(mode="json")}
    fields["finished_at"] = utcnow()
    written = store.update_if(_key(check_id), fields, expect={"state": "RUNNING"})
    store.release(LOCK_KEY, check_id)
    if written is None:
        # Expired while it ran (past its deadline): that outcome stands.
        logger.warning("release check ended after its deadline", extra={"check_id": check_id})
        return find_run(store, check_id)
    logger.info("release check ended", extra={"check_id": check_id, "state": fields["state"]})
    return CheckRun.model_validate(RELEASE_CHECK.decode(written))


def _new_run(settings: Settings, requested_by: str) -> CheckRun:
    now = time.time()
    return CheckRun(
        check_id=new_check_id(),
        state="RUNNING",
        requested_at=_iso(now),
        requested_by=requested_by,
        deadline=_iso(now + settings.release_check_deadline_s),
    )


def _expire(store: Store, run: CheckRun) -> CheckRun:
    fields = {
        "state": "FAILED",
        "finished_at": utcnow(),
        "error_type": "CheckTimedOut",
        "error": f"the check did not finish by its deadline ({run.deadline}): its function "
        "failed or never ran; the function's log has the cause",
    }
    written = store.update_if(_key(run.check_id), fields, expect={"state": "RUNNING"})
    # Whoever holds it next re-reads; the lock itself is freed by the next claim.
    if written is None:
        item = store.get_item(_key(run.check_id))
        if item is None:
            raise NotFoundError(f"no release check with id {run.check_id!r}", field="check_id")
        written = item
    return CheckRun.model_validate(RELEASE_CHECK.decode(written))


def _undo(store: Store, run: CheckRun, exc: BaseException) -> None:
    """The invocation was not queued: record the run FAILED with the reason and free the
    lock, together (a request that joined it meanwhile then reads why)."""
    error = as_error(exc)
    fields = {
        "state": "FAILED",
        "finished_at": utcnow(),
        "error_type": type(error).__name__,
        "error": f"the check function could not be invoked: {_reason(error)}",
    }
    try:
        settled = store.settle_claim(
            LOCK_KEY,
            run.check_id,
            pk=_key(run.check_id),
            fields=fields,
            expect={"state": "RUNNING"},
        )
    except Exception:
        settled = False
    # Not settled (the table failing too): the run counts as FAILED at its deadline.
    logger.warning(
        "release check could not be started",
        extra={"check_id": run.check_id, "error": error.message, "settled": settled},
    )


def _reason(error: RLayerError) -> str:
    # As in an HTTP answer: an internal error's text may name internals (a table, an ARN);
    # the log has it.
    if error.public:
        return error.message
    return f"{type(error).__name__} on our side; the log has the cause"


def _key(check_id: str) -> str:
    return RELEASE_CHECK.key(check_id)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
