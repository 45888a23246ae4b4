"""The build pipeline's task functions, one module per state of state_machine.asl.json.

    MarkBuilding      (ASL: a direct DynamoDB update, QUEUED -> BUILDING)
    StartBuild        start      backend.start_build, once per build
    CheckBuild        check      backend.check_build; FAILED/TIMED_OUT raise
    StopBuild         check      past ${MaxPolls}: stop the build, BuildTimedOutError
    ValidateArtifact  validate   artifacts (pure checks) + sources (S3 / local)
    PublishLayers     publish    layer versions from S3; reuses a proven runtime (runtimes)
    RunCanary         canary     the canary function on the build's layers
    RetireLayers      retire     delete what this build published (failure after publish)
    RecordSuccess     record     SUCCEEDED, and the proven runtime for reuse
    RecordFailure     record     FAILED, with the first failed state's error
    Notify            notify     the notifier registry

``TASKS`` is the one registry (state, function, handler; the placeholder follows from the
state). ``TASK_FUNCTIONS`` (placeholder -> function) and ``HANDLERS`` (function -> handler)
are views of it. The names are stable contracts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.pipeline import (
    canary,
    check,
    notify,
    publish,
    record,
    retire,
    start,
    validate,
)
from chalicelib.pipeline.task import Handler


@dataclass(frozen=True)
class Task:
    """One task state: the ASL state, the Chalice function behind it, its handler."""

    state: str
    function: str
    handler: Handler

    @property
    def placeholder(self) -> str:
        """The ASL's ``${...}`` for this function's ARN (deployment and local stack fill it)."""
        return f"{self.state}FunctionArn"


# The one registry of task states. app.py declares one Chalice function per row (a test
# holds it to this table); the local stack and the deployment read the placeholders here.
TASKS: tuple[Task, ...] = (
    Task("StartBuild", "start_build", start.handler),
    Task("CheckBuild", "check_build", check.check_handler),
    Task("StopBuild", "stop_build", check.stop_handler),
    Task("ValidateArtifact", "validate_artifact", validate.handler),
    Task("PublishLayers", "publish_layers", publish.handler),
    Task("RunCanary", "run_canary", canary.handler),
    Task("RetireLayers", "retire_layers", retire.handler),
    Task("RecordSuccess", "record_success", record.success_handler),
    Task("RecordFailure", "record_failure", record.failure_handler),
    Task("Notify", "notify", notify.handler),  # also NotifyFailure's
)
HANDLERS: dict[str, Handler] = {task.function: task.handler for task in TASKS}
TASK_FUNCTIONS: dict[str, str] = {task.placeholder: task.function for task in TASKS}

# A ``${Name}`` placeholder of state_machine.asl.json: the one pattern the deployment
# (DefinitionSubstitutions) and the local stack fill.
PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")
