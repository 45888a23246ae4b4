"""AWS answering with a fault, through the clients every adapter uses.

A handler on a client's events (the seam ``chalicelib.aws.session`` documents) answers in
place of AWS, and the adapters map the error exactly as they would a real one:

- ``before-call`` (the default) answers before any request is made, as botocore's Stubber
  does: nothing reaches moto, so a refused write really wrote nothing;
- ``before-send`` answers at the HTTP level, so botocore parses the body and its retry mode
  runs. Every ``before-send`` handler is called, moto's too, so moto still carries out
  the request: use it for reads only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

from chalicelib.aws.session import client


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@dataclass
class Fault:
    """Answers the next ``times`` calls of ``operation`` (None: every call) with an error."""

    code: str
    status: int
    operation: str = "*"
    times: int | None = None
    calls: list[str] = field(default_factory=list)

    def _take(self, event_name: str) -> bool:
        if self.times is not None and len(self.calls) >= self.times:
            return False
        self.calls.append(event_name.rsplit(".", 1)[-1])
        return True

    def refuse(self, event_name: str, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not self._take(event_name):
            return None
        parsed = {
            "Error": {"Code": self.code, "Message": f"injected {self.code}"},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        return AWSResponse("https://fault.invalid/", self.status, {}, _Raw(b"")), parsed

    def answer(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        if not self._take(event_name):
            return None
        # The JSON protocols (DynamoDB, Step Functions, SSM...) name the error in __type.
        body = json.dumps({"__type": self.code, "message": f"injected {self.code}"})
        headers = {"x-amzn-errortype": self.code, "content-type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, self.status, headers, _Raw(body.encode()))


THROTTLED = ("ThrottlingException", 400)
UNAVAILABLE = ("ServiceUnavailable", 503)
DENIED = ("AccessDeniedException", 400)


@contextmanager
def aws_fault(
    service: str,
    code: str,
    status: int,
    *,
    operation: str = "*",
    times: int | None = None,
    stage: str = "call",
) -> Iterator[Fault]:
    fault = Fault(code, status, operation, times)
    events = client(service).meta.events
    service_id = client(service).meta.service_model.service_id.hyphenize()
    # Events are hierarchical: the service's name alone catches each of its operations.
    name = f"before-{stage}.{service_id}" + ("" if operation == "*" else f".{operation}")
    handler = fault.refuse if stage == "call" else fault.answer
    # First, so its answer is the one botocore takes.
    events.register_first(name, handler)
    try:
        yield fault
    finally:
        events.unregister(name, handler)
