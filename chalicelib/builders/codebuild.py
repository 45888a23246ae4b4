"""The ``codebuild`` backend: one CodeBuild project per architecture runs buildspec/."""

from __future__ import annotations

from typing import Any

from chalicelib.aws import codebuild
from chalicelib.aws.s3 import uri as s3_uri
from chalicelib.builders.base import (
    BuildProgress,
    BuildState,
    artifact_prefix,
    build_environment,
    system_packages,
)
from chalicelib.models import Architecture, BuildSpec
from chalicelib.settings import Settings

# CodeBuild's buildStatus -> ours. STOPPED and FAULT are failures from our point of view.
_STATES = {
    "IN_PROGRESS": BuildState.IN_PROGRESS,
    "SUCCEEDED": BuildState.SUCCEEDED,
    "FAILED": BuildState.FAILED,
    "FAULT": BuildState.FAILED,
    "STOPPED": BuildState.FAILED,
    "TIMED_OUT": BuildState.TIMED_OUT,
}


class CodeBuildBackend:
    name = "codebuild"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def project(self, architecture: Architecture) -> str:
        if architecture is Architecture.ARM64:
            return self.settings.codebuild_project_arm64
        return self.settings.codebuild_project_x86_64

    def artifact_uri(self, build_id: str) -> str:
        return s3_uri(self.settings.artifact_bucket, artifact_prefix(build_id))

    def start_build(self, build_id: str, spec: BuildSpec) -> str:
        # build_environment validates the spec again: the values become shell variables.
        env = build_environment(
            build_id,
            spec,
            artifact_uri=self.artifact_uri(build_id),
            r_source=self.settings.r_source,
            cran_repo=self.settings.cran_repo,
            system_packages=system_packages(spec, self.settings.cran_repo, "dnf"),
        )
        return codebuild.start_build(
            self.project(spec.architecture), env, idempotency_token=build_id
        )

    def check_build(self, build_ref: str) -> BuildProgress:
        return progress_from_build(codebuild.get_build(build_ref))

    def stop_build(self, build_ref: str) -> None:
        codebuild.stop_build(build_ref)


def progress_from_build(build: dict[str, Any]) -> BuildProgress:
    """One ``batch_get_builds`` entry (botocore's casing) as a BuildProgress."""
    status = str(build.get("buildStatus", "IN_PROGRESS"))
    state = _STATES.get(status, BuildState.FAILED)
    env = {
        v.get("name"): v.get("value")
        for v in build.get("environment", {}).get("environmentVariables", [])
    }
    return BuildProgress(
        state=state,
        artifact_location=env.get("RLAYER_ARTIFACT_URI") or _artifact_location(build),
        log_url=build.get("logs", {}).get("deepLink"),
        reason=_failure_reason(build, status) if state is not BuildState.SUCCEEDED else None,
        current_phase=build.get("currentPhase"),
    )


def _artifact_location(build: dict[str, Any]) -> str | None:
    # Projects with S3 artifacts report arn:aws:s3:::bucket/key.
    location = str(build.get("artifacts", {}).get("location") or "")
    if location.startswith("arn:aws:s3:::"):
        return "s3://" + location.removeprefix("arn:aws:s3:::").rstrip("/") + "/"
    return None


def _failure_reason(build: dict[str, Any], status: str) -> str | None:
    if status == "IN_PROGRESS":
        return None
    for phase in build.get("phases", []):
        if phase.get("phaseStatus") not in (None, "SUCCEEDED"):
            messages = [c.get("message", "") for c in phase.get("contexts", []) if c.get("message")]
            detail = "; ".join(messages) or phase.get("phaseStatus")
            return f"{phase.get('phaseType')}: {detail}"
    return f"CodeBuild reported {status}"
