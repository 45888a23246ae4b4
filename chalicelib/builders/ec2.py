"""The ``ec2`` backend: one throwaway Amazon Linux 2023 instance per build.

StartBuild launches the instance (the AMI from AWS's public SSM parameter for the
architecture, the instance type from settings, optionally Spot, IMDSv2 required, no key
pair, shutdown behaviour ``terminate``, tagged with the build id) with the user data of
``ec2_user_data.sh``: it fetches ``build-source.zip``, runs the buildspec phases with the
same scripts as CodeBuild, uploads the artifacts, ``build.log`` and ``status.json`` under
the build's artifact prefix and powers off. The instance needs no S3 grant for any of it:
the user data carries a presigned URL for the source and a presigned form for the prefix,
so a static instance role need not name the build (it only reaches the compiled-R cache).

CheckBuild reads the status object, else the instance: one gone without a status is a
failed build whose reason quotes its console's last lines (and says so when Spot took it).
StopBuild, and the reaper (:mod:`chalicelib.builders.ec2_reaper`), terminate it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from chalicelib.aws import ec2, s3
from chalicelib.builders.base import (
    BuildProgress,
    BuildState,
    artifact_prefix,
    build_environment,
    system_packages,
)
from chalicelib.errors import BuildStartError, NotFoundError
from chalicelib.models import Architecture, BuildSpec
from chalicelib.settings import Settings

USER_DATA_TEMPLATE = Path(__file__).with_name("ec2_user_data.sh")
EXPORTS_MARK = "#@EXPORTS@"
# Where upload.sh leaves the artifacts on the instance (the user data uploads them).
INSTANCE_UPLOAD_DIR = "/srv/rlayer/upload"
# EC2 takes at most 16 KB of user data (before base64).
USER_DATA_MAX = 16 * 1024
# The largest object the build's form may upload (a layer is at most 250 MB unzipped).
UPLOAD_MAX_BYTES = 1024**3
# The presigned grants outlive the watchdog by the uploads' time.
GRANT_MARGIN_S = 1800
CONSOLE_LINES = 15
RUNNING = frozenset({"pending", "running", "stopping", "shutting-down"})
BUILD_REF_RE = re.compile(
    r"^(?P<build>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})/(?P<instance>i-[0-9a-f]+)$"
)


class Ec2BuildStatus(BaseModel):
    """``status.json``, the instance's verdict (written by the user data's ``finish``)."""

    state: Literal["SUCCEEDED", "FAILED", "TIMED_OUT"]
    phase: str | None = None
    reason: str | None = None
    log_tail: list[str] = []


def build_ref(build_id: str, instance_id: str) -> str:
    return f"{build_id}/{instance_id}"


def parse_ref(ref: str) -> tuple[str, str]:
    found = BUILD_REF_RE.match(ref)
    if found is None:
        raise NotFoundError(f"not an ec2 build reference: {ref!r}", field="build_ref")
    return found["build"], found["instance"]


class Ec2Backend:
    name = "ec2"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- BuildBackend ------------------------------------------------------------------
    def start_build(self, build_id: str, spec: BuildSpec) -> str:
        # A retried StartBuild finds the instance its first attempt launched (ClientToken
        # does the same in EC2; the tag also holds where a token is not honoured).
        for instance in ec2.build_instances(build_id):
            return build_ref(build_id, str(instance["InstanceId"]))
        params = self.run_request(build_id, spec)
        return build_ref(build_id, ec2.run_instance(params))

    def check_build(self, ref: str) -> BuildProgress:
        build_id, instance_id = parse_ref(ref)
        status = self._status(build_id)
        instance = None
        if status is None:
            instance = ec2.describe(instance_id)
            state = _state(instance)
            if state in RUNNING:
                return BuildProgress(
                    state=BuildState.IN_PROGRESS,
                    log_url=self._log_uri(build_id),
                    current_phase=f"instance {state}",
                )
            # Gone: it may have written its status just before it went.
            status = self._status(build_id)
        if status is not None:
            # It powers itself off; terminating it here too leaves nothing behind if not.
            ec2.terminate([instance_id])
            return self._progress(build_id, status)
        ec2.terminate([instance_id])
        console = ec2.console_tail(instance_id, CONSOLE_LINES)
        return BuildProgress(
            state=BuildState.FAILED,
            log_url=self._log_uri(build_id),
            reason=_gone_reason(instance_id, instance, console),
            current_phase=f"instance {_state(instance)}",
        )

    def stop_build(self, ref: str) -> None:
        build_id, instance_id = parse_ref(ref)
        others = [str(i["InstanceId"]) for i in ec2.build_instances(build_id)]
        ec2.terminate(sorted({instance_id, *others}))

    # -- the request -------------------------------------------------------------------
    def run_request(self, build_id: str, spec: BuildSpec) -> dict[str, Any]:
        """RunInstances' parameters for this build (user data included)."""
        s = self.settings
        arm = spec.architecture is Architecture.ARM64
        tags = [
            {"Key": ec2.BUILD_TAG, "Value": build_id},
            {"Key": ec2.STAGE_TAG, "Value": s.stage},
            {"Key": "Name", "Value": f"rlayer-build-{build_id}"},
        ]
        params: dict[str, Any] = {
            "ImageId": ec2.ami_id(s.ec2_ami_parameter_arm64 if arm else s.ec2_ami_parameter_x86_64),
            "InstanceType": s.ec2_instance_type_arm64 if arm else s.ec2_instance_type_x86_64,
            "ClientToken": build_id,
            "UserData": self.user_data(build_id, spec),
            "InstanceInitiatedShutdownBehavior": "terminate",
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "BlockDeviceMappings": [
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "VolumeSize": s.ec2_volume_gb,
                        "VolumeType": "gp3",
                        "DeleteOnTermination": True,
                        "Encrypted": True,
                    },
                }
            ],
            "TagSpecifications": [
                {"ResourceType": kind, "Tags": tags} for kind in ("instance", "volume")
            ],
        }
        if s.ec2_launch_template_id:
            params["LaunchTemplate"] = {
                "LaunchTemplateId": s.ec2_launch_template_id,
                "Version": "$Default",
            }
        if s.ec2_instance_profile:
            key = "Arn" if s.ec2_instance_profile.startswith("arn:") else "Name"
            params["IamInstanceProfile"] = {key: s.ec2_instance_profile}
        if s.ec2_security_group_id:
            params["SecurityGroupIds"] = [s.ec2_security_group_id]
        if s.ec2_subnet_id:
            params["SubnetId"] = s.ec2_subnet_id
        if s.ec2_spot:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        return params

    def user_data(self, build_id: str, spec: BuildSpec) -> str:
        s = self.settings
        if not s.ec2_build_source:
            raise BuildStartError("the ec2 backend needs EC2_BUILD_SOURCE (s3://bucket/key)")
        source_bucket, source_key = s3.split_uri(s.ec2_build_source)
        prefix = artifact_prefix(build_id)
        grant_s = s.ec2_build_timeout_s + GRANT_MARGIN_S
        upload_url, fields = s3.presigned_post(s.artifact_bucket, prefix, grant_s, UPLOAD_MAX_BYTES)
        env = build_environment(
            build_id,
            spec,
            artifact_uri=INSTANCE_UPLOAD_DIR,
            r_source=s.r_source.replace("{version}", spec.r_version),
            cran_repo=s.cran_repo.replace("{version}", spec.r_version),
            system_packages=system_packages(spec, s.cran_repo, "dnf"),
        )
        env.update(
            {
                "RLAYER_EC2_SOURCE_URL": s3.presigned_get(source_bucket, source_key, grant_s),
                "RLAYER_EC2_UPLOAD_URL": upload_url,
                "RLAYER_EC2_FORM": "\n".join(f"{k}={v}" for k, v in sorted(fields.items())),
                "RLAYER_EC2_PREFIX": prefix,
                "RLAYER_EC2_TIMEOUT_S": str(s.ec2_build_timeout_s),
            }
        )
        cache = self.cache_uri()
        if cache:
            env["RLAYER_CACHE_URI"] = cache
        exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()))
        text = USER_DATA_TEMPLATE.read_text().replace(EXPORTS_MARK, exports, 1)
        if len(text.encode()) > USER_DATA_MAX:
            raise BuildStartError(
                f"the instance's user data is {len(text.encode())} bytes, over EC2's "
                f"{USER_DATA_MAX}"
            )
        return text

    def cache_uri(self) -> str:
        """The compiled-R cache: EC2_CACHE_URI, ``none`` for the instance's own disk only,
        or by default the artifact bucket's ``cache/`` (what CodeBuild builds share)."""
        uri = self.settings.ec2_cache_uri
        if uri == "none":
            return ""
        return uri or f"s3://{self.settings.artifact_bucket}/cache"

    # -- helpers -----------------------------------------------------------------------
    def _status(self, build_id: str) -> Ec2BuildStatus | None:
        raw = s3.get_bytes(self.settings.artifact_bucket, artifact_prefix(build_id) + "status.json")
        if raw is None:
            return None
        try:
            return Ec2BuildStatus.model_validate_json(raw)
        except ValidationError:
            return Ec2BuildStatus(state="FAILED", reason="the instance's status.json is unreadable")

    def _log_uri(self, build_id: str) -> str:
        return s3.uri(self.settings.artifact_bucket, artifact_prefix(build_id) + "build.log")

    def _progress(self, build_id: str, status: Ec2BuildStatus) -> BuildProgress:
        succeeded = status.state == "SUCCEEDED"
        location = s3.uri(self.settings.artifact_bucket, artifact_prefix(build_id))
        return BuildProgress(
            state=BuildState(status.state),
            artifact_location=location if succeeded else None,
            log_url=self._log_uri(build_id),
            reason=None if succeeded else status.reason,
            log_tail=[] if succeeded else status.log_tail,
            current_phase=status.phase,
        )


def _state(instance: dict[str, Any] | None) -> str:
    if instance is None:
        return "gone"
    return str(instance.get("State", {}).get("Name", "unknown"))


def _gone_reason(instance_id: str, instance: dict[str, Any] | None, console: list[str]) -> str:
    reason = instance.get("StateReason", {}) if instance else {}
    code = str(reason.get("Code") or "")
    if instance and instance.get("InstanceLifecycle") == "spot" and "Spot" in code:
        what = f"Spot interrupted instance {instance_id} ({code}) before the build ended"
    else:
        detail = str(reason.get("Message") or code or _state(instance))
        what = f"instance {instance_id} ended without a result ({detail})"
    if not console:
        return what + "; its console output is empty"
    return what + "; its console's last lines:\n" + "\n".join(console)
