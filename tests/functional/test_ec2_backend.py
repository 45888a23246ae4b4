"""The ec2 backend against moto's EC2, SSM and S3: the launch request, the status object,
an instance that dies, stopping, the reaper, and the request's ``backend`` field."""

from __future__ import annotations

import base64
import json
import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from chalicelib.builders import get_backend
from chalicelib.builders.base import BuildState
from chalicelib.builders.ec2 import USER_DATA_MAX, Ec2Backend, _gone_reason, parse_ref
from chalicelib.builders.ec2_reaper import reap
from chalicelib.errors import BuildStartError
from chalicelib.models import Architecture, BuildSpec
from chalicelib.settings import Settings, get_settings

AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-"
SOURCE = "s3://rlayer-test-artifacts/source/build-source.zip"


@pytest.fixture
def ec2_env(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("BUILD_BACKENDS", "ec2")
    monkeypatch.setenv("EC2_BUILD_SOURCE", SOURCE)
    monkeypatch.setenv("EC2_BUILD_TIMEOUT_S", "600")
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=aws["bucket"], Key="source/build-source.zip", Body=b"PK\x05\x06" + b"\0" * 18
    )
    return aws


def _backend(**overrides: Any) -> Ec2Backend:
    return Ec2Backend(get_settings().model_copy(update=overrides))


def _instances(state: str | None = None) -> list[dict[str, Any]]:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    found = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    return [i for i in found if state is None or i["State"]["Name"] == state]


def _running() -> list[str]:
    return [
        i["InstanceId"]
        for i in _instances()
        if i["State"]["Name"] in ("pending", "running", "stopping", "stopped")
    ]


def _user_data(instance_id: str) -> str:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    value = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode(value["UserData"]["Value"]).decode()


def _exports(user_data: str) -> dict[str, str]:
    """The variables the user data exports, as the shell reads them."""
    block = user_data.split("#!/bin/sh", 1)[1].split("\nset -u", 1)[0]
    words = [w for w in shlex.split(block, comments=True) if w != "export"]
    return dict(w.split("=", 1) for w in words)


def _put_status(bucket: str, build_id: str, status: dict[str, Any]) -> None:
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=bucket, Key=f"artifacts/{build_id}/status.json", Body=json.dumps(status).encode()
    )


SPEC = BuildSpec(r_version="4.4.1", packages=("jsonlite",))


def test_the_stage_default_is_codebuild_and_ec2_is_built_in(ec2_env: dict[str, Any]) -> None:
    assert get_settings().allowed_backends() == ("codebuild", "ec2")
    assert isinstance(get_backend(Settings(build_backend="ec2")), Ec2Backend)


def test_start_launches_one_locked_down_instance_per_architecture(
    ec2_env: dict[str, Any],
) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    boto3.client("iam").create_instance_profile(InstanceProfileName="rlayer-build-instance")
    backend = _backend(
        ec2_instance_profile="rlayer-build-instance",
        ec2_volume_gb=64,
        ec2_subnet_id="",
    )
    for arch, kind in ((Architecture.X86_64, "c7i.2xlarge"), (Architecture.ARM64, "c7g.2xlarge")):
        spec = SPEC.model_copy(update={"architecture": arch})
        build_id = f"20260101T000000-{arch.value.replace('_', '')[:8]}"
        ref = backend.start_build(build_id, spec)
        got_build, instance_id = parse_ref(ref)
        assert got_build == build_id
        [instance] = [i for i in _instances() if i["InstanceId"] == instance_id]
        ami = ssm.get_parameter(Name=AL2023 + arch.value)["Parameter"]["Value"]
        assert instance["ImageId"] == ami
        assert instance["InstanceType"] == kind
        assert "KeyName" not in instance
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["rlayer:build-id"] == build_id
        assert tags["rlayer:stage"] == "dev"
        assert instance["IamInstanceProfile"]["Arn"].endswith("/rlayer-build-instance")
        behaviour = ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior"
        )
        assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
        user_data = _user_data(instance_id)
        assert len(user_data.encode()) <= USER_DATA_MAX
        assert f"export RLAYER_BUILD_ID={build_id}" in user_data
        assert f"export RLAYER_ARCH={arch.value}" in user_data
        assert "export RLAYER_CACHE_URI=s3://rlayer-test-artifacts/cache" in user_data
        assert "export RLAYER_EC2_TIMEOUT_S=600" in user_data
        assert "source/build-source.zip" in user_data
        assert "poweroff" in user_data
    params = backend.run_request("b-1", SPEC)
    [ebs] = params["BlockDeviceMappings"]
    assert ebs["Ebs"]["VolumeSize"] == 64
    assert ebs["Ebs"]["DeleteOnTermination"] is True


def test_spot_subnet_and_security_group_come_from_settings(ec2_env: dict[str, Any]) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="b", Description="b", VpcId=vpc)["GroupId"]
    backend = _backend(ec2_spot=True, ec2_subnet_id=subnet, ec2_security_group_id=group)
    _, instance_id = parse_ref(backend.start_build("20260101T000000-spot", SPEC))
    [instance] = [i for i in _instances() if i["InstanceId"] == instance_id]
    assert instance["InstanceLifecycle"] == "spot"
    assert instance["SubnetId"] == subnet
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group]


def test_a_retried_start_returns_the_instance_already_launched(ec2_env: dict[str, Any]) -> None:
    backend = _backend()
    first = backend.start_build("20260101T000000-again", SPEC)
    assert backend.start_build("20260101T000000-again", SPEC) == first
    assert len(_running()) == 1


def test_without_a_build_source_the_start_is_refused(ec2_env: dict[str, Any]) -> None:
    with pytest.raises(BuildStartError, match="EC2_BUILD_SOURCE"):
        _backend(ec2_build_source="").start_build("20260101T000000-nosrc", SPEC)
    assert _running() == []


def test_the_presigned_form_uploads_under_the_build_prefix_only(ec2_env: dict[str, Any]) -> None:
    backend = _backend()
    _, instance_id = parse_ref(backend.start_build("20260101T000000-form", SPEC))
    exports = _exports(_user_data(instance_id))
    url = exports["RLAYER_EC2_UPLOAD_URL"]
    fields = dict(line.split("=", 1) for line in exports["RLAYER_EC2_FORM"].splitlines())
    assert "policy" in fields
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["starts-with", "$key", "artifacts/20260101T000000-form/"] in policy["conditions"]
    key = "artifacts/20260101T000000-form/status.json"
    resp = requests.post(url, data={**fields, "key": key}, files={"file": b'{"state":"x"}'})
    assert resp.status_code in (200, 201, 204)
    body = boto3.client("s3", region_name="us-east-1").get_object(
        Bucket=ec2_env["bucket"], Key=key
    )["Body"]
    assert body.read() == b'{"state":"x"}'


def test_check_reads_the_status_object_and_leaves_no_instance(ec2_env: dict[str, Any]) -> None:
    backend = _backend()
    ok_ref = backend.start_build("20260101T000000-ok", SPEC)
    bad_ref = backend.start_build("20260101T000000-bad", SPEC)
    progress = backend.check_build(ok_ref)
    assert progress.state is BuildState.IN_PROGRESS
    assert progress.current_phase in ("instance pending", "instance running")
    _put_status(
        ec2_env["bucket"], "20260101T000000-ok", {"state": "SUCCEEDED", "phase": "post_build"}
    )
    _put_status(
        ec2_env["bucket"],
        "20260101T000000-bad",
        {
            "state": "FAILED",
            "phase": "build",
            "reason": "phase build: `sh buildspec/build-runtime.sh` exited with status 1",
            "log_tail": ["configure: error: no Fortran compiler"],
        },
    )
    done = backend.check_build(ok_ref)
    assert done.state is BuildState.SUCCEEDED
    assert done.artifact_location == "s3://rlayer-test-artifacts/artifacts/20260101T000000-ok/"
    assert done.log_url == "s3://rlayer-test-artifacts/artifacts/20260101T000000-ok/build.log"
    failed = backend.check_build(bad_ref)
    assert failed.state is BuildState.FAILED
    assert failed.reason is not None and "build-runtime.sh" in failed.reason
    assert failed.log_tail == ["configure: error: no Fortran compiler"]
    assert failed.artifact_location is None
    assert _running() == []


def test_an_instance_gone_without_a_status_is_a_failure_quoting_its_console(
    ec2_env: dict[str, Any],
) -> None:
    backend = _backend()
    ref = backend.start_build("20260101T000000-died", SPEC)
    _, instance_id = parse_ref(ref)
    boto3.client("ec2", region_name="us-east-1").terminate_instances(InstanceIds=[instance_id])
    progress = backend.check_build(ref)
    assert progress.state is BuildState.FAILED
    assert progress.reason is not None
    assert f"instance {instance_id} ended without a result" in progress.reason
    # moto's console output, as EC2 gives it: its last lines are in the reason.
    assert "Enabling fast FPU save and restore... done." in progress.reason
    assert _running() == []


def test_a_spot_interruption_says_so() -> None:
    instance = {
        "InstanceLifecycle": "spot",
        "State": {"Name": "terminated"},
        "StateReason": {
            "Code": "Server.SpotInstanceTermination",
            "Message": "Server.SpotInstanceTermination: Spot instance termination",
        },
    }
    reason = _gone_reason("i-0abc", instance, ["make[2]: *** [foo.o]"])
    assert reason.startswith("Spot interrupted instance i-0abc (Server.SpotInstanceTermination)")
    assert reason.endswith("make[2]: *** [foo.o]")
    assert "ended without a result (gone)" in _gone_reason("i-0abc", None, [])


def test_stop_terminates_the_instance(ec2_env: dict[str, Any]) -> None:
    backend = _backend()
    ref = backend.start_build("20260101T000000-stop", SPEC)
    backend.stop_build(ref)
    backend.stop_build(ref)  # again: already gone is not an error
    assert _running() == []


def test_the_reaper_terminates_old_instances_whose_execution_ended(
    ec2_env: dict[str, Any],
) -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = ec2_env["state_machine_arn"]
    backend = _backend()
    # moto leaves an execution RUNNING until it is stopped.
    live, stopped, orphan = (f"20260101T000000-{n}" for n in ("live", "stop", "orph"))
    sfn.start_execution(stateMachineArn=machine, name=live)
    stopped_arn = sfn.start_execution(stateMachineArn=machine, name=stopped)["executionArn"]
    sfn.stop_execution(executionArn=stopped_arn)
    ids = {b: parse_ref(backend.start_build(b, SPEC))[1] for b in (live, stopped, orphan)}
    other_stage = parse_ref(_backend(stage="prod").start_build("20260101T000000-prod", SPEC))[1]
    settings = get_settings()
    young = reap(settings)
    assert young.terminated == [] and young.young == 3
    later = datetime.now(UTC) + timedelta(seconds=settings.ec2_build_timeout_s + 1)
    result = reap(settings, now=later)
    assert sorted(result.terminated) == sorted([ids[stopped], ids[orphan]])
    assert result.kept_running == [ids[live]]
    assert set(_running()) == {ids[live], other_stage}
    # A stage that builds on no EC2 launches none and reaps none.
    assert reap(settings.model_copy(update={"build_backends": ""}), now=later).terminated == []
    # Once its execution ends, the live one goes too.
    sfn.stop_execution(executionArn=stopped_arn.replace(stopped, live))
    assert reap(settings, now=later).terminated == [ids[live]]
    assert _running() == [other_stage]


def test_a_request_may_ask_for_a_backend_the_stage_allows(
    ec2_env: dict[str, Any], client: Any
) -> None:
    body = {"r_version": "4.4.1", "backend": "ec2"}
    resp = client.http.post(
        "/builds", body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert resp.status_code in (200, 201, 202), resp.body
    build_id = json.loads(resp.body)["build_id"]
    record = json.loads(client.http.get(f"/builds/{build_id}").body)
    assert record["backend"] == "ec2"
    refused = client.http.post(
        "/builds",
        body=json.dumps({"r_version": "4.4.2", "backend": "local"}),
        headers={"Content-Type": "application/json"},
    )
    assert refused.status_code == 400
    error = json.loads(refused.body)
    assert "backend" in json.dumps(error)


def test_the_user_data_fits_with_a_lambda_session_token(
    ec2_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.aws.session import reset_clients

    # Lambda's role credentials carry a session token (about a kilobyte); it goes into the
    # presigned URL and the form's fields.
    monkeypatch.setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjE" + "A" * 1100)
    # boto3's default session keeps the credentials it resolved first: a fresh one reads
    # the token (and another, after the test, forgets it).
    boto3.setup_default_session()
    reset_clients()
    many = BuildSpec(r_version="4.4.1", packages=tuple(f"pkg{i:03d}" for i in range(200)))
    try:
        user_data = _backend().user_data("20260101T000000-token", many)
    finally:
        monkeypatch.delenv("AWS_SESSION_TOKEN")
        boto3.setup_default_session()
        reset_clients()
    assert "IQoJb3JpZ2luX2VjE" in user_data
    assert len(user_data.encode()) <= USER_DATA_MAX
