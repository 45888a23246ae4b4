"""CodeBuild: start, read and stop the builds of the ``codebuild`` backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws.faults import error_code
from chalicelib.aws.session import client
from chalicelib.errors import NotFoundError


def start_build(project: str, env: Mapping[str, str], *, idempotency_token: str) -> str:
    """Start a build with these environment overrides; return its id.

    CodeBuild answers a repeated request with the same token (within 5 minutes) with the
    build it already started, so a retried task does not start a second build.
    """
    resp = client("codebuild").start_build(
        projectName=project,
        environmentVariablesOverride=[
            {"name": k, "value": v, "type": "PLAINTEXT"} for k, v in sorted(env.items())
        ],
        idempotencyToken=idempotency_token,
    )
    return str(resp["build"]["id"])


def get_build(build_id: str) -> dict[str, Any]:
    resp = client("codebuild").batch_get_builds(ids=[build_id])
    builds: list[dict[str, Any]] = resp.get("builds", [])
    if not builds:
        raise NotFoundError(f"CodeBuild does not know build {build_id!r}", field="build_ref")
    return builds[0]


def stop_build(build_id: str) -> None:
    try:
        client("codebuild").stop_build(id=build_id)
    except ClientError as exc:
        # Stopping a build that already ended is not an error for us.
        if error_code(exc) != "InvalidInputException":
            raise
