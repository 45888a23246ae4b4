"""Starting and reading Step Functions executions."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws.session import client
from chalicelib.errors import UpstreamError


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
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            return execution_arn(state_machine_arn, name)
        raise UpstreamError(f"could not start the build's execution: {exc}") from exc
    return str(resp["executionArn"])


def execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def describe_execution(arn: str) -> dict[str, Any]:
    resp: dict[str, Any] = client("stepfunctions").describe_execution(executionArn=arn)
    return resp
