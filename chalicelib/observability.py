"""The only Logger, Tracer and Metrics of rlayer (Powertools)."""

from __future__ import annotations

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
