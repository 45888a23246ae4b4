"""The reaper of EC2 build instances: the scheduled backstop behind the watchdog.

An execution stopped from outside (the console, an API call) skips every ``Catch``, so no
StopBuild terminates its instance; an instance whose user data never ran has no watchdog.
Every run terminates this stage's tagged build instances that are older than the build
timeout and whose execution is no longer running.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from chalicelib.aws import ec2, stepfunctions
from chalicelib.observability import logger
from chalicelib.settings import Settings

# How often the schedule runs (app.py); an instance lives at most this past its timeout.
REAP_EVERY_MINUTES = 15


class ReapResult(BaseModel):
    terminated: list[str] = []
    # Old enough, but their execution still runs (the state machine's own limit ends it).
    kept_running: list[str] = []
    young: int = 0


def reap(settings: Settings, now: datetime | None = None) -> ReapResult:
    now = now or datetime.now(UTC)
    result = ReapResult()
    if "ec2" not in settings.allowed_backends():
        return result  # this stage launches no instances
    doomed: list[str] = []
    for instance in ec2.build_instances():
        if ec2.tag(instance, ec2.STAGE_TAG) != settings.stage:
            continue  # another stage's build (the same account, another stack)
        instance_id = str(instance["InstanceId"])
        age = (now - ec2.launch_time(instance)).total_seconds()
        if age < settings.ec2_build_timeout_s:
            result.young += 1
            continue
        build_id = ec2.tag(instance, ec2.BUILD_TAG) or ""
        arn = stepfunctions.execution_arn(settings.state_machine_arn, build_id)
        if build_id and stepfunctions.execution_running(arn):
            result.kept_running.append(instance_id)
            continue
        doomed.append(instance_id)
    ec2.terminate(doomed)
    result.terminated = doomed
    if doomed:
        logger.warning("build instances reaped", extra={"instances": doomed})
    return result
