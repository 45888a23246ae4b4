"""Fuzzing the HTTP API with schemathesis, against its own OpenAPI document, on the local
stack: what the suite (tests/functional/test_api_fuzz.py) and bench/fuzz share.

Accepted builds go to a backend whose builds fail at once and do no work, so a request the
API takes runs an execution of the real ASL to its end (the failure path) and compiles
nothing; executions that ended hold no thread, so a long run stays small. What every case must show:

- no 5xx; every error body is ``{"error", "message", "field"?, "request_id"?}`` and names
  the field on a 400 or 413; every answer matches its schema (schemathesis' checks);
- the Slack route answers a signed form with 200 (or 413 over its size), anything
  unsigned with 401;
- nothing lost, nothing extra: a refused request changes no build, spec index item,
  subscription or execution; every build record that appears has its one execution.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import hypothesis
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS
from slack_sdk.signature import SignatureVerifier

from chalicelib.aws.session import client
from chalicelib.builders import register_backend
from chalicelib.builders.base import BuildProgress, BuildState
from chalicelib.models import BuildSpec
from chalicelib.settings import Settings
from rlayer.local.stack import LocalStack, StackOptions

SECRET = "fuzz-signing-secret"
SLACK_PATH = "/slack/commands"
ERROR_KEYS = {"error", "message", "field", "request_id"}
# The checks every case runs. Not positive_data_acceptance: some rules are beyond what a
# schema can say (R >= 4.0.0, a package named twice), so schema-valid input may get a 400.
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
# What the local HTTP server takes at all (http.server answers others with its own 501);
# in AWS, API Gateway refuses the rest before our code runs.
SERVED_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# One release in the feed: /releases/check has something to find, offline.
FEED = [{"version": "4.4.1", "date": "2024-06-14T08:00:00Z", "nickname": "Race for Your Life"}]


class IdleBackend:
    """Builds that do nothing and fail at their first check: no compile, and the
    execution goes on to its end (RecordFailure, Notify)."""

    name = "idle"

    def __init__(self, settings: Settings) -> None:
        pass

    def start_build(self, build_id: str, spec: BuildSpec) -> str:
        return f"idle:{build_id}"

    def check_build(self, build_ref: str) -> BuildProgress:
        return BuildProgress(state=BuildState.FAILED, reason="the fuzzing backend builds nothing")

    def stop_build(self, build_ref: str) -> None:
        pass


register_backend("idle", IdleBackend)


@dataclass(frozen=True)
class Snapshot:
    builds: int
    specs: int
    subscriptions: int
    executions: int


class Target:
    """The running stack, and what one case does to it."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.url = stack.api_url
        self.session = requests.Session()
        self.checks = [c for c in CHECKS.get_all() if c.__name__ in CHECK_NAMES]
        self.statuses: dict[str, dict[int, int]] = {}

    def schema(self) -> Any:
        return schemathesis.openapi.from_url(f"{self.url}/openapi.json")

    def snapshot(self) -> Snapshot:
        counts = {"BUILD": 0, "SPEC": 0, "SUB": 0}
        ddb = client("dynamodb")
        for page in ddb.get_paginator("scan").paginate(
            TableName=self.stack.settings.table_name, ProjectionExpression="pk"
        ):
            for item in page["Items"]:
                kind = item["pk"]["S"].split("#", 1)[0]
                if kind in counts:
                    counts[kind] += 1
        sfn = client("stepfunctions")
        executions = sum(
            len(page["executions"])
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self.stack.state_machine_arn
            )
        )
        return Snapshot(counts["BUILD"], counts["SPEC"], counts["SUB"], executions)

    def run(self, case: Any) -> requests.Response:
        """Send one case, validate the answer, check the invariants; AssertionError if not."""
        before = self.snapshot()
        signed = True
        if case.operation.path == SLACK_PATH and case.method.upper() == "POST":
            response, signed = self._slack(case)
            case.validate_response(response, checks=self.checks)
        else:
            response = case.call(session=self.session, base_url=self.url)
            case.validate_response(response, checks=self.checks)
        after = self.snapshot()
        key = f"{case.operation.method.upper()} {case.operation.path}"
        by_status = self.statuses.setdefault(key, {})
        by_status[response.status_code] = by_status.get(response.status_code, 0) + 1
        self._invariants(case, response, signed, before, after)
        return response

    def _slack(self, case: Any) -> tuple[requests.Response, bool]:
        body = encode_form(case.body).encode()
        # One form in eight goes unsigned (a fixed rule: the cases are derandomized).
        signed = hashlib.sha256(body).digest()[0] % 8 != 0
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signed:
            headers.update(sign(body))
        response = self.session.post(f"{self.url}{SLACK_PATH}", data=body, headers=headers)
        return response, signed

    @staticmethod
    def _invariants(
        case: Any, response: requests.Response, signed: bool, before: Snapshot, after: Snapshot
    ) -> None:
        status = response.status_code
        where = f"{case.operation.method.upper()} {case.operation.path} -> {status}"
        assert status < 500, f"{where}: {response.text[:500]}"
        if status >= 400:
            body = response.json()
            assert isinstance(body, dict), where
            assert {"error", "message"} <= set(body) <= ERROR_KEYS, f"{where}: {body}"
            if status in (400, 413):
                assert body.get("field"), f"{where}: no field named: {body}"
            assert after == before, f"{where}: a refused request changed {before} -> {after}"
        if case.operation.path == SLACK_PATH and case.method.upper() == "POST":
            allowed = {200, 413} if signed else {401, 413}
            assert status in allowed, f"{where} (signed={signed}): {response.text[:300]}"
        # Every record that appeared has its execution, and no execution came alone.
        assert after.builds - before.builds == after.executions - before.executions, (
            f"{where}: {before} -> {after}"
        )
        if case.operation.path == "/builds" and case.operation.method.upper() == "POST":
            expected = 1 if status == 202 else 0
            assert after.builds - before.builds == expected, f"{where}: {before} -> {after}"


def encode_form(data: Any) -> str:
    """A generated form body as Slack would send it (values as text)."""
    if isinstance(data, bytes | str):
        return data.decode(errors="replace") if isinstance(data, bytes) else data
    if not isinstance(data, dict):
        return json.dumps(data, default=lambda _: "")  # no body (NotSet), or not a form
    pairs = []
    for key, value in data.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            text = v if isinstance(v, str) else json.dumps(v)
            pairs.append((str(key), text))
    return urlencode(pairs)


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


@contextmanager
def fuzz_stack(tmp: Path, *, log: IO[str] | None = None) -> Iterator[Target]:
    feed = tmp / "feed.json"
    feed.write_text(json.dumps(FEED))
    stack = LocalStack(
        StackOptions(
            api_port=0,
            data_dir=tmp / "data",
            run_schedules=False,
            log_stream=log,
            poll_interval_s=1,
            env={
                "BUILD_BACKEND": "idle",
                "SLACK_SIGNING_SECRET": SECRET,
                "R_RELEASES_URL": feed.as_uri(),
                "RELEASES_BASELINE": "none",
                # Every accepted request starts a build; the limit has its own tests.
                "MAX_BUILDS_PER_CALLER": "0",
            },
        )
    )
    with stack:
        yield Target(stack)


@dataclass
class Found:
    cases: int = 0
    failures: list[str] = field(default_factory=list)


def fuzz_route(
    target: Target, api: Any, method: str, path: str, *, cases: int, seed: int = 0
) -> Found:
    """Schemathesis' coverage cases for one route (each enum value, each bound, each field
    missing or of the wrong type: deterministic), then ``cases`` random requests, valid and
    invalid by the schema, from a fixed seed. A case that breaks a rule is recorded, and
    the run goes on."""
    operation = api[path][method.upper()]
    modes = [GenerationMode.POSITIVE]
    if _can_negate(operation):
        modes.append(GenerationMode.NEGATIVE)
    found = Found()

    def check(case: Any) -> None:
        if case.method.upper() not in SERVED_METHODS:
            return
        found.cases += 1
        try:
            target.run(case)
        except AssertionError as exc:  # our rules, and one failed schemathesis check
            found.failures.append(f"{method} {path}: {exc}\n{case.as_curl_command()}")
        except requests.RequestException as exc:  # no answer in time, a reset connection
            found.failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
        except BaseExceptionGroup as group:  # several failed checks, or a wrapped error
            reasons = "; ".join(
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                for e in group.exceptions
            )
            found.failures.append(f"{method} {path}: {reasons}\n{case.as_curl_command()}")
        except Exception as exc:  # anything else that went wrong with this case
            found.failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")

    config = api.config.generation_for(operation=operation)
    for case in api.iter_coverage_cases(
        operation, generation_modes=modes, generation_config=config
    ):
        check(case)
    strategies = [operation.as_strategy(mode) for mode in modes]

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(st.one_of(strategies))
    def one(case: Any) -> None:
        check(case)

    one()
    return found


def _can_negate(operation: Any) -> bool:
    # Nothing to make invalid: no parameters and no body.
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))
