"""The only Logger, Tracer and Metrics of rlayer (Powertools)."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "rlayer"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="rlayer", service=SERVICE)


def bind_build(build_id: str) -> None:
    """Every log line from here on in this invocation carries the build id."""
    logger.append_keys(build_id=build_id)
    # And every trace segment of it can be found by the build id (X-Ray annotation).
    tracer.put_annotation(key="build_id", value=build_id)


_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def bind_request(aws_request_id: str | None) -> str:
    """Name this HTTP request (API Gateway's id in AWS, a fresh one locally) and log it."""
    rid = aws_request_id or str(uuid.uuid4())
    _request_id.set(rid)
    logger.append_keys(request_id=rid)
    return rid


def request_id() -> str:
    """This request's id: what an error answer shows and every log line of it carries."""
    rid = _request_id.get()
    return rid if rid is not None else bind_request(None)


def publish_metrics() -> None:
    """Flush this event's metrics (none: nothing, rather than Powertools' warning)."""
    if metrics.metric_set:
        metrics.flush_metrics()
    # With POWERTOOLS_METRICS_DISABLED a flush prints nothing and keeps the set, and
    # Powertools prints it anyway once it holds 100 values: clear it here, every event.
    metrics.clear_metrics()
