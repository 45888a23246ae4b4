"""Starting and reading Step Functions executions."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws.faults import as_error, error_code
from chalicelib.aws.session import client


def start_execution(state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
    """Start an execution named ``name``; return its ARN.

    An execution of that name that already exists (a retried request) is not an error:
    its ARN is returned, so the call is idempotent per build id.
    """
    sfn = client("stepfunctions")
    try:
        resp = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload)
        )
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) == "ExecutionAlreadyExists":
            return execution_arn(state_machine_arn, name)
        # Throttling: TransientError (503); anything else: InternalError (500). Either way
        # the caller marks the record FAILED, so no build waits for an execution never made.
        raise as_error(exc) from exc
    return str(resp["executionArn"])


def execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def describe_execution(arn: str) -> dict[str, Any]:
    resp: dict[str, Any] = client("stepfunctions").describe_execution(executionArn=arn)
    return resp


def execution_running(arn: str) -> bool:
    """Whether this execution is still RUNNING (one Step Functions does not know is not)."""
    try:
        resp = client("stepfunctions").describe_execution(executionArn=arn)
    except ClientError as exc:
        if error_code(exc) == "ExecutionDoesNotExist":
            return False
        raise
    return str(resp.get("status")) == "RUNNING"
