"""Lambda: layer versions (publish, find, delete) and the canary function."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.aws.faults import error_code
from chalicelib.aws.session import client
from chalicelib.errors import InternalError
from chalicelib.lambda_os import compatible_runtimes
from chalicelib.settings import get_settings

# Custom runtimes a layer of ours runs on: the rows of the Lambda OS table (provided.al2
# reached its end of support on 2026-06-30, and its glibc 2.26 is older than builds need).
COMPATIBLE_RUNTIMES = compatible_runtimes()


@dataclass(frozen=True)
class PublishedLayer:
    arn: str
    version: int
    code_sha256_b64: str
    code_size: int


@dataclass(frozen=True)
class Invocation:
    payload: bytes
    function_error: str | None
    log_tail: str
    executed_version: str | None


def publish_layer_version(
    *,
    name: str,
    bucket: str,
    key: str,
    description: str,
    architecture: str,
    license_info: str,
    region: str | None = None,
) -> PublishedLayer:
    # Always from S3 (a bucket in ``region``): a direct upload is capped at 50 MB, below
    # many R layers, and Lambda reads S3 in its own region only.
    resp = client("lambda", region).publish_layer_version(
        LayerName=name,
        Description=description,
        Content={"S3Bucket": bucket, "S3Key": key},
        CompatibleRuntimes=list(COMPATIBLE_RUNTIMES),
        CompatibleArchitectures=[architecture],
        LicenseInfo=license_info,
    )
    return PublishedLayer(
        arn=resp["LayerVersionArn"],
        version=int(resp["Version"]),
        code_sha256_b64=resp["Content"].get("CodeSha256", ""),
        code_size=int(resp["Content"].get("CodeSize", 0)),
    )


def list_layer_versions(name: str, region: str | None = None) -> list[dict[str, Any]]:
    """Every version of a layer (newest first); empty when the layer does not exist."""
    versions: list[dict[str, Any]] = []
    try:
        for page in (
            client("lambda", region).get_paginator("list_layer_versions").paginate(LayerName=name)
        ):
            versions.extend(page.get("LayerVersions", []))
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return []
        raise
    return versions


def get_layer_version(arn: str) -> dict[str, Any] | None:
    """A layer version by its ARN (with ``Content.CodeSha256``), or None when it is gone;
    asked in the ARN's region."""
    # GetLayerVersion by name and number: the same answer as GetLayerVersionByArn, and the
    # one the offline stack implements too.
    layer_arn, _, number = arn.rpartition(":")
    try:
        resp: dict[str, Any] = client("lambda", arn_region(arn)).get_layer_version(
            LayerName=layer_arn, VersionNumber=int(number)
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return resp


def delete_layer_version(name: str, version: int, region: str | None = None) -> None:
    # Deleting a version that is already gone succeeds in Lambda: safe to repeat.
    client("lambda", region).delete_layer_version(LayerName=name, VersionNumber=version)


def arn_region(arn: str) -> str:
    """The region of a Lambda ARN (arn:aws:lambda:<region>:...)."""
    return arn.split(":")[3]


def add_layer_permission(arn: str, statement_id: str, grant: dict[str, str]) -> bool:
    """Let ``grant`` (Principal and perhaps OrganizationId) use the version; False when a
    statement of that id is there already (an earlier attempt added it)."""
    layer_arn, _, number = arn.rpartition(":")
    try:
        client("lambda", arn_region(arn)).add_layer_version_permission(
            LayerName=layer_arn,
            VersionNumber=int(number),
            StatementId=statement_id,
            Action="lambda:GetLayerVersion",
            **grant,
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceConflictException":
            return False
        raise
    return True


def layer_policy(arn: str) -> dict[str, Any] | None:
    """The version's resource policy (parsed), or None when it has none."""
    layer_arn, _, number = arn.rpartition(":")
    try:
        resp = client("lambda", arn_region(arn)).get_layer_version_policy(
            LayerName=layer_arn, VersionNumber=int(number)
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    policy: dict[str, Any] = json.loads(resp["Policy"])
    return policy


def function_configuration(name: str, qualifier: str | None = None) -> dict[str, Any] | None:
    args = {"FunctionName": name}
    if qualifier:
        args["Qualifier"] = qualifier
    try:
        resp: dict[str, Any] = client("lambda").get_function_configuration(**args)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return resp


def create_function(
    *,
    name: str,
    role: str,
    runtime: str,
    handler: str,
    code: bytes,
    architecture: str,
    layers: Sequence[str],
    memory_mb: int,
    timeout_s: int,
    description: str,
) -> None:
    client("lambda").create_function(
        FunctionName=name,
        Role=role,
        Runtime=runtime,
        Handler=handler,
        Code={"ZipFile": code},
        Architectures=[architecture],
        Layers=list(layers),
        MemorySize=memory_mb,
        Timeout=timeout_s,
        Description=description,
        Publish=False,
    )


def update_function_code(name: str, code: bytes, architecture: str) -> None:
    client("lambda").update_function_code(
        FunctionName=name, ZipFile=code, Architectures=[architecture]
    )


def update_function_configuration(
    *,
    name: str,
    role: str,
    runtime: str,
    handler: str,
    layers: Sequence[str],
    memory_mb: int,
    timeout_s: int,
    description: str,
) -> None:
    client("lambda").update_function_configuration(
        FunctionName=name,
        Role=role,
        Runtime=runtime,
        Handler=handler,
        Layers=list(layers),
        MemorySize=memory_mb,
        Timeout=timeout_s,
        Description=description,
    )


def wait_active(name: str, *, delay_s: int = 1, max_attempts: int = 120) -> None:
    client("lambda").get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": delay_s, "MaxAttempts": max_attempts}
    )


def wait_updated(name: str, *, delay_s: int = 1, max_attempts: int = 120) -> None:
    client("lambda").get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": delay_s, "MaxAttempts": max_attempts}
    )


def publish_version(name: str, description: str) -> str:
    resp = client("lambda").publish_version(FunctionName=name, Description=description)
    return str(resp["Version"])


def delete_function_version(name: str, version: str) -> None:
    try:
        client("lambda").delete_function(FunctionName=name, Qualifier=version)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise


def invoke(name: str, payload: bytes, *, qualifier: str | None, timeout_s: float) -> Invocation:
    """Invoke synchronously with the log tail (the REPORT line carries the timings)."""
    # A client of its own: the shared one's read timeout (60 s) may be shorter than the
    # function's, and botocore must not retry an invocation that is merely slow.
    lam = boto3.client(
        "lambda",
        region_name=get_settings().aws_region,
        config=Config(read_timeout=timeout_s + 30, retries={"mode": "standard", "max_attempts": 1}),
    )
    args: dict[str, Any] = {"FunctionName": name, "Payload": payload, "LogType": "Tail"}
    if qualifier:
        args["Qualifier"] = qualifier
    resp = lam.invoke(**args)
    log = resp.get("LogResult")
    return Invocation(
        payload=resp["Payload"].read(),
        function_error=resp.get("FunctionError"),
        log_tail=base64.b64decode(log).decode("utf-8", "replace") if log else "",
        executed_version=resp.get("ExecutedVersion"),
    )


def invoke_async(name: str, payload: bytes) -> None:
    """Queue one invocation (InvocationType Event); returns once Lambda has the event.

    Lambda answers 202 and runs the function later, retrying it on its own if it fails;
    an error here (no such function, throttled, refused) means nothing was queued.
    """
    resp = client("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=payload)
    status = resp.get("StatusCode")
    if status != 202:
        raise InternalError(f"Lambda answered an asynchronous invoke of {name} with {status}")
