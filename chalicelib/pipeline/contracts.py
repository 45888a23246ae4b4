"""Inputs and outputs of the task functions (what the state machine passes and keeps).

Inputs carry the build id and little else: every task re-reads the record, the source of
truth, and never trusts a spec or an artifact location from the event. Outputs are small
and free of datetimes; the ASL keeps only what later states need (``ResultSelector``).
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chalicelib.models import BuildStatus

# A Step Functions execution name, which is what a build id is.
BUILD_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class TaskInput(BaseModel):
    # The ASL passes only what it chose to; anything else in the state is not ours to read.
    model_config = ConfigDict(extra="ignore", frozen=True)

    build_id: str

    @field_validator("build_id")
    @classmethod
    def _build_id(cls, value: str) -> str:
        if not BUILD_ID_RE.match(value):
            raise ValueError("is not a build id")
        return value


class StartBuildOutput(BaseModel):
    build_ref: str


class CheckBuildOutput(BaseModel):
    state: Literal["IN_PROGRESS", "SUCCEEDED"]
    phase: str | None = None


class StopBuildInput(TaskInput):
    polls: int | None = None


class StopBuildOutput(BaseModel):
    """Shaped by the ASL into a caught error for RecordFailure."""

    error_type: str
    message: str


class ValidatedLayerSummary(BaseModel):
    kind: Literal["runtime", "packages"]
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    file_count: int


class ValidateOutput(BaseModel):
    layers: list[ValidatedLayerSummary]
    total_unzipped_bytes: int


class PublishedSummary(BaseModel):
    kind: Literal["runtime", "packages"]
    arn: str
    reused: bool


class PublishOutput(BaseModel):
    layers: list[PublishedSummary]


class CanaryOutput(BaseModel):
    r_version: str
    packages: dict[str, str]
    init_ms: float | None = None
    duration_ms: float | None = None
    max_memory_mb: int | None = None


class RetireOutput(BaseModel):
    retired: list[str]


class CaughtError(BaseModel):
    """What a ``Catch`` puts at its ResultPath: ``{"Error": ..., "Cause": ...}``."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    error: str = Field(default="States.Unknown", alias="Error")
    cause: str | None = Field(default=None, alias="Cause")

    def message(self) -> str:
        """The Lambda errorMessage when the cause is a Lambda error payload, else the cause."""
        if not self.cause:
            return self.error
        try:
            payload = json.loads(self.cause)
        except ValueError:
            return self.cause
        if isinstance(payload, dict) and isinstance(payload.get("errorMessage"), str):
            return str(payload["errorMessage"])
        return self.cause


class RecordFailureInput(TaskInput):
    # Each Catch writes to $.failed.<StateName>, so the key names the failed state.
    failed: dict[str, CaughtError] = Field(default_factory=dict)


class FinalOutput(BaseModel):
    status: BuildStatus
