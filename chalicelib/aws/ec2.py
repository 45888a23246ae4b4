"""EC2 and the AMI parameters: the instances of the ``ec2`` build backend.

Every build instance carries the tag :data:`BUILD_TAG` (its build id): StopBuild, CheckBuild
and the reaper find instances by it, and the deployment's policy lets the functions
terminate only instances that carry it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws.faults import error_code
from chalicelib.aws.session import client

BUILD_TAG = "rlayer:build-id"
STAGE_TAG = "rlayer:stage"
# States of an instance that may still run (or be about to).
LIVE_STATES = ("pending", "running", "stopping", "stopped")
_GONE = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})


def ami_id(parameter: str) -> str:
    """The AMI id AWS publishes under this public SSM parameter."""
    resp = client("ssm").get_parameter(Name=parameter)
    return str(resp["Parameter"]["Value"])


def run_instance(params: Mapping[str, Any]) -> str:
    """RunInstances for one instance; its id. ``params`` is the request (ClientToken in it
    makes a retried call return the instance the first one started)."""
    resp = client("ec2").run_instances(MinCount=1, MaxCount=1, **params)
    return str(resp["Instances"][0]["InstanceId"])


def describe(instance_id: str) -> dict[str, Any] | None:
    """The instance as DescribeInstances has it, or None when EC2 no longer knows it."""
    try:
        resp = client("ec2").describe_instances(InstanceIds=[instance_id])
    except ClientError as exc:
        if error_code(exc) in _GONE:
            return None
        raise
    for reservation in resp.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            return dict(instance)
    return None


def build_instances(build_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Build instances (all, or one build's) that are not terminated."""
    filters = [
        {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        {"Name": f"tag:{BUILD_TAG}", "Values": [build_id]}
        if build_id
        else {"Name": "tag-key", "Values": [BUILD_TAG]},
    ]
    pages = client("ec2").get_paginator("describe_instances").paginate(Filters=filters)
    for page in pages:
        for reservation in page.get("Reservations", []):
            yield from reservation.get("Instances", [])


def console_tail(instance_id: str, lines: int) -> list[str]:
    """The last lines of the instance's console output (empty when there is none)."""
    try:
        resp = client("ec2").get_console_output(InstanceId=instance_id, Latest=True)
    except ClientError as exc:
        if error_code(exc) in _GONE:
            return []
        raise
    text = str(resp.get("Output") or "")
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


def terminate(instance_ids: list[str]) -> None:
    """Terminate these instances; one EC2 no longer knows is already gone."""
    if not instance_ids:
        return
    try:
        client("ec2").terminate_instances(InstanceIds=instance_ids)
    except ClientError as exc:
        if error_code(exc) not in _GONE:
            raise


def tag(instance: Mapping[str, Any], key: str) -> str | None:
    for item in instance.get("Tags", []):
        if item.get("Key") == key:
            return str(item.get("Value"))
    return None


def launch_time(instance: Mapping[str, Any]) -> datetime:
    value = instance["LaunchTime"]
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
