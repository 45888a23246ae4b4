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

``TASK_FUNCTIONS`` maps each ASL placeholder to the Chalice function name behind it (the
deployment and the local stack substitute the functions' ARNs); ``HANDLERS`` maps those
names to the handlers app.py registers. Both names are stable contracts.
"""

from __future__ import annotations

import re

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
from chalicelib.pipeline.runner import Handler

HANDLERS: dict[str, Handler] = {
    "start_build": start.handler,
    "check_build": check.check_handler,
    "stop_build": check.stop_handler,
    "validate_artifact": validate.handler,
    "publish_layers": publish.handler,
    "run_canary": canary.handler,
    "retire_layers": retire.handler,
    "record_success": record.success_handler,
    "record_failure": record.failure_handler,
    "notify": notify.handler,
}

TASK_FUNCTIONS: dict[str, str] = {
    "StartBuildFunctionArn": "start_build",
    "CheckBuildFunctionArn": "check_build",
    "StopBuildFunctionArn": "stop_build",
    "ValidateArtifactFunctionArn": "validate_artifact",
    "PublishLayersFunctionArn": "publish_layers",
    "RunCanaryFunctionArn": "run_canary",
    "RetireLayersFunctionArn": "retire_layers",
    "RecordSuccessFunctionArn": "record_success",
    "RecordFailureFunctionArn": "record_failure",
    "NotifyFunctionArn": "notify",
}

# A ``${Name}`` placeholder of state_machine.asl.json: the one pattern the deployment
# (DefinitionSubstitutions) and the local stack fill.
PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")
