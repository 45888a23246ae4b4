"""What the local stack creates in moto, as the deployment creates it in AWS: moto's
switches, the table, the bucket, a role, the task functions and the state machine."""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from chalicelib.aws import s3
from chalicelib.aws.items import table_definition
from chalicelib.aws.session import client
from chalicelib.pipeline import TASK_FUNCTIONS
from chalicelib.settings import Settings
from rlayer.local import asl

STAGE = "local"
ROLE = "rlayer-local"
STATE_MACHINE = "rlayer-local-pipeline"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    ],
}
# A build still running after this long is stopped (the ASL's poll limit).
BUILD_TIMEOUT_S = 3 * 3600
# Functions the app invokes itself besides the task functions: POST /releases/check
# invokes the scheduled check's function asynchronously.
INVOKED_FUNCTIONS = ("check_releases",)


def function_name(name: str) -> str:
    """A task function's Lambda name, as Chalice names it when it deploys a stage."""
    return f"rlayer-{STAGE}-{name}"


def moto_api(moto_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    method = "GET" if body is None else "POST"
    req = urllib.request.Request(moto_url + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def configure(moto_url: str) -> dict[str, Any]:
    """Switch moto to run the ASL for real and Lambda without Docker (the bridge runs the
    code); return the configuration it had, for :func:`reset`."""
    saved: dict[str, Any] = moto_api(moto_url, "/moto-api/config")
    moto_api(
        moto_url,
        "/moto-api/config",
        {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
    )
    return saved


def reset(moto_url: str, saved: dict[str, Any] | None) -> None:
    """Forget every resource and put moto's switches back: moto's state is per process, and
    whoever runs next in it (a test) expects a fresh one."""
    moto_api(moto_url, "/moto-api/reset", {})
    if saved is not None:
        # GET does not report the Step Functions switch; off is its default.
        moto_api(
            moto_url,
            "/moto-api/config",
            {**saved, "stepfunctions": {"execute_state_machine": False}},
        )


def create_role() -> str:
    return str(
        client("iam").create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))[
            "Role"
        ]["Arn"]
    )


def create_pipeline(settings: Settings, role_arn: str, *, poll_interval_s: int) -> str:
    """The table, the bucket, the functions and the state machine; its ARN."""
    client("dynamodb").create_table(**table_definition(settings.table_name))
    client("s3").create_bucket(Bucket=settings.artifact_bucket)
    # The staging bucket of every other region (one small stack per region in AWS).
    for region in settings.publish_regions()[1:]:
        client("s3", region).create_bucket(
            Bucket=settings.staging_bucket(region),
            CreateBucketConfiguration={"LocationConstraint": region},
        )
    arns = {name: _create_function(name, role_arn) for name in TASK_FUNCTIONS.values()}
    for name in INVOKED_FUNCTIONS:
        _create_function(name, role_arn)
    definition = asl.render(
        asl.substitutions(
            arns,
            table_name=settings.table_name,
            poll_interval_s=poll_interval_s,
            max_polls=max(1, int(BUILD_TIMEOUT_S / max(1, poll_interval_s))),
        )
    )
    return str(
        client("stepfunctions").create_state_machine(
            name=STATE_MACHINE, definition=definition, roleArn=role_arn
        )["stateMachineArn"]
    )


def _create_function(name: str, role_arn: str) -> str:
    return str(
        client("lambda").create_function(
            FunctionName=function_name(name),
            Runtime="python3.12",
            Role=role_arn,
            Handler=f"app.{name}",
            Code={"ZipFile": _placeholder_zip()},
            Timeout=900,
            MemorySize=512,
        )["FunctionArn"]
    )


def _placeholder_zip() -> bytes:
    """Code for the task functions' Lambda entries: the bridge runs the real handlers."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "# Run in-process by rlayer.local.lambda_bridge.\n")
    return buf.getvalue()


def put_build_source(settings: Settings, dest: Path) -> None:
    """build-source.zip of this tree where the ec2 backend's instances fetch it (the
    same zip ``make package`` makes for CodeBuild)."""
    from deploy.package import build_source_zip

    bucket, key = s3.split_uri(settings.ec2_build_source)
    s3.upload(build_source_zip(dest), bucket, key)
