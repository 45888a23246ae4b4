"""The functions' policy grants what chalicelib/aws calls, and nothing else (no AWS).

The AWS calls are read off the source: every ``client("<service>")`` module's method
calls that are operations of that service (botocore's model), its paginators and waiters,
and the few boto3/Powertools helpers that are not operations. A new call without a grant,
or a grant nothing calls, fails here.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from deploy import template

REPO = template.REPO
AWS_CODE = sorted((REPO / "chalicelib" / "aws").glob("*.py"))
POLICY_FILES = sorted((REPO / ".chalice").glob("policy-*.json"))

# IAM prefix -> botocore service name, for the services rlayer's policies mention.
SERVICES = {
    "apigateway": "apigateway",
    "cloudformation": "cloudformation",
    "codebuild": "codebuild",
    "dynamodb": "dynamodb",
    "ec2": "ec2",
    "events": "events",
    "iam": "iam",
    "lambda": "lambda",
    "logs": "logs",
    "s3": "s3",
    "secretsmanager": "secretsmanager",
    "ssm": "ssm",
    "states": "stepfunctions",
    "xray": "xray",
}
# IAM actions that are not an API operation of the same name (IAM-only permissions).
IAM_ONLY_ACTIONS = {
    "lambda:InvokeFunction",  # the Invoke operation
    "iam:PassRole",  # handing a role to a service
    "dynamodb:ConditionCheckItem",  # one kind of TransactWriteItems entry
    "logs:CreateLogDelivery",  # vended logs (Step Functions, ...)
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "s3:GetObjectVersion",
    "s3:ListBucket",  # ListObjects(V2), HeadBucket
    "s3:PutEncryptionConfiguration",  # Put/GetBucketEncryption
    "s3:GetEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",  # Put/GetBucketLifecycleConfiguration
    "s3:GetLifecycleConfiguration",
    "s3:PutBucketPublicAccessBlock",  # Put/GetPublicAccessBlock
    "s3:GetBucketPublicAccessBlock",
    *(f"apigateway:{verb}" for verb in ("GET", "POST", "PUT", "PATCH", "DELETE")),
}
# boto3 and Powertools helpers that are not operations, and the actions they need.
HELPER_ACTIONS = {
    ("s3", "download_file"): {"s3:GetObject"},
    ("s3", "upload_file"): {"s3:PutObject"},  # multipart parts are s3:PutObject too
    ("s3", "copy"): {"s3:GetObject", "s3:PutObject"},  # managed copy: head, copy (parts)
    ("s3", "head_object"): {"s3:GetObject"},
    ("lambda", "invoke"): {"lambda:InvokeFunction"},
    ("lambda", "get_layer_version_by_arn"): {"lambda:GetLayerVersion"},
    # store.create_build's transaction holds Put entries only.
    ("dynamodb", "transact_write_items"): {"dynamodb:PutItem"},
}
PROVIDER_ACTIONS = {
    "SecretsProvider": {"secretsmanager:GetSecretValue"},
    "SSMProvider": {"ssm:GetParameter"},
}
# Called by the code but never in the deployed stack.
NOT_DEPLOYED = {
    "ssm:GetParameter": "the stack keeps the Slack secret in Secrets Manager; SSM is read only "
    "when SLACK_SECRET_PARAMETER names a parameter (a setup the stack does not make)",
}
# Granted although no code calls them: AWS uses them on the functions' behalf.
IMPLIED = {
    "logs:CreateLogStream": "Lambda writes each function's logs with the function's role",
    "logs:PutLogEvents": "Lambda writes each function's logs with the function's role",
    "xray:PutTraceSegments": "active tracing sends the functions' segments with their role",
    "xray:PutTelemetryRecords": "active tracing sends the functions' segments with their role",
    "iam:PassRole": "create/update_function_configuration hand the canary role to Lambda, "
    "RunInstances the build instance role to EC2",
    "ec2:CreateTags": "RunInstances tags the build instance and its volume at launch",
}


@cache
def operations(service: str) -> frozenset[str]:
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(model.operation_names)


@cache
def snake_operations(service: str) -> dict[str, str]:
    from botocore import xform_name

    return {xform_name(op): op for op in operations(service)}


def iam_prefix(service: str) -> str:
    return next(prefix for prefix, name in SERVICES.items() if name == service)


def _literal(node: ast.Call) -> str | None:
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def actions_called(path: Path) -> Iterator[tuple[str, str]]:
    """(IAM action, call) for every AWS call in one module."""
    calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
    services = {_literal(c) for c in calls if _callee(c) == "client"} - {None}
    session = botocore.session.get_session()
    for call in calls:
        name = _callee(call)
        if name in PROVIDER_ACTIONS:
            for action in PROVIDER_ACTIONS[name]:
                yield action, name
        for service in sorted(s for s in services if s is not None):
            prefix = iam_prefix(service)
            ops = snake_operations(service)
            if name == "get_paginator" and _literal(call) in ops:
                yield f"{prefix}:{ops[str(_literal(call))]}", f"paginator {_literal(call)}"
            elif name == "get_waiter" and _literal(call):
                client = session.create_client(service, region_name="us-east-1")
                op = client.get_waiter(_literal(call)).config.operation
                yield f"{prefix}:{op}", f"waiter {_literal(call)}"
            elif (service, name) in HELPER_ACTIONS:
                for action in HELPER_ACTIONS[(service, str(name))]:
                    yield action, str(name)
            elif name in ops:
                yield f"{prefix}:{ops[name]}", name


def code_actions() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in AWS_CODE:
        for action, call in actions_called(path):
            found.setdefault(action, set()).add(f"{path.name}: {call}")
    return found


def granted(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}


def test_the_scan_sees_the_calls_it_must() -> None:
    # Guards the scanner itself: these calls are in chalicelib/aws today.
    found = code_actions()
    for action in (
        "dynamodb:UpdateItem",
        "states:StartExecution",
        "codebuild:StartBuild",
        "s3:GetObject",
        "lambda:PublishLayerVersion",
        "lambda:InvokeFunction",
        "secretsmanager:GetSecretValue",
    ):
        assert action in found, action


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_every_call_of_the_code_is_granted(path: Path) -> None:
    missing = {
        action: sorted(where)
        for action, where in code_actions().items()
        if action not in NOT_DEPLOYED and action not in granted(json.loads(path.read_text()))
    }
    assert missing == {}


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_nothing_is_granted_that_no_code_calls(path: Path) -> None:
    unused = granted(json.loads(path.read_text())) - set(code_actions()) - set(IMPLIED)
    assert unused == set()


def all_policy_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in POLICY_FILES:
        yield path.name, json.loads(path.read_text())
    yield "deployer-policy.json", json.loads((REPO / "deploy/deployer-policy.json").read_text())
    tpl = template.load_resources()
    for name, resource in tpl["Resources"].items():
        for policy in resource.get("Properties", {}).get("Policies", []):
            yield f"{name}/{policy['PolicyName']}", policy["PolicyDocument"]


def test_every_action_named_anywhere_exists() -> None:
    unknown: list[str] = []
    for where, document in all_policy_documents():
        for statement in document["Statement"]:
            for action in statement.get("Action", []):
                prefix, _, op = action.partition(":")
                if action in IAM_ONLY_ACTIONS:
                    continue
                if prefix not in SERVICES or op not in operations(SERVICES[prefix]):
                    unknown.append(f"{where}: {action}")
    assert unknown == []


# What the deployer may touch: stacks, roles and resources whose names start with rlayer-
# (the default stack names), plus the few actions AWS offers on "*" only.
DEPLOYER_STAR = {
    "secretsmanager:GetRandomPassword",  # GenerateSecretString; no resource-level permission
    "logs:DescribeLogGroups",
    "logs:CreateLogDelivery",  # creating a state machine with logging
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "ec2:DescribeSecurityGroups",  # EC2's Describe* have no resource-level permission
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeVpcs",  # deploy.sh finds the default VPC
}
# EC2 resources are named by id, not by name: the deployer's grants on them hold only for
# those CloudFormation tags with an rlayer- stack's name.
STACK_TAG = "aws:cloudformation:stack-name"


def _tagged_by_an_rlayer_stack(statement: dict[str, Any]) -> bool:
    like = statement.get("Condition", {}).get("StringLike", {})
    return any(
        like.get(f"aws:{kind}Tag/{STACK_TAG}") == "rlayer-*" for kind in ("Request", "Resource")
    )


def test_the_deployer_policy_is_scoped_to_rlayer_names() -> None:
    document = json.loads((REPO / "deploy/deployer-policy.json").read_text())
    for statement in document["Statement"]:
        actions = statement["Action"]
        assert all("*" not in a for a in actions), actions
        resources = statement["Resource"]
        for resource in resources if isinstance(resources, list) else [resources]:
            if resource == "*":
                assert set(actions) <= DEPLOYER_STAR, actions
            else:
                ec2_ids = (":security-group/*", ":launch-template/*")
                assert (
                    "rlayer-" in resource
                    or resource.endswith(":aws:transform/Serverless-2016-10-31")
                    or ":apigateway:*::/restapis" in resource  # API ids are not names
                    or (resource.endswith(ec2_ids) and _tagged_by_an_rlayer_stack(statement))
                    # A security group is made in a VPC: the group itself is tag-bound.
                    or (resource.endswith(":vpc/*") and actions == ["ec2:CreateSecurityGroup"])
                ), resource


def test_the_deployer_may_create_every_kind_of_resource_in_the_stack() -> None:
    document = json.loads((REPO / "deploy/deployer-policy.json").read_text())
    allowed = {a for s in document["Statement"] for a in s["Action"]}
    creates = {
        "AWS::DynamoDB::Table": "dynamodb:CreateTable",
        "AWS::S3::Bucket": "s3:CreateBucket",
        "AWS::S3::BucketPolicy": "s3:PutBucketPolicy",
        "AWS::SecretsManager::Secret": "secretsmanager:CreateSecret",
        "AWS::Logs::LogGroup": "logs:CreateLogGroup",
        "AWS::IAM::Role": "iam:CreateRole",
        "AWS::CodeBuild::Project": "codebuild:CreateProject",
        "AWS::StepFunctions::StateMachine": "states:CreateStateMachine",
        "AWS::IAM::InstanceProfile": "iam:CreateInstanceProfile",
        "AWS::EC2::SecurityGroup": "ec2:CreateSecurityGroup",
        "AWS::EC2::LaunchTemplate": "ec2:CreateLaunchTemplate",
    }
    kinds = {r["Type"] for r in template.load_resources()["Resources"].values()}
    assert kinds <= set(creates), kinds - set(creates)
    assert {creates[k] for k in kinds} <= allowed
    # What Chalice's SAM resources become: functions, their roles, the API, schedules.
    assert {
        "lambda:CreateFunction",
        "lambda:AddPermission",
        "apigateway:POST",
        "events:PutRule",
        "iam:PassRole",
    } <= allowed


# -- the ec2 backend's grants ------------------------------------------------------------
LAUNCH_TEMPLATE_ARN = (
    "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:"
    "launch-template/${BuildInstanceLaunchTemplate}"
)


def _ec2_statements(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text())
    return [
        s
        for s in document["Statement"]
        if any(a.startswith("ec2:") or a == "iam:PassRole" for a in s["Action"])
        or s["Action"] == ["ssm:GetParameter"]
    ]


def _resources(statement: dict[str, Any]) -> list[str]:
    value = statement["Resource"]
    items = value if isinstance(value, list) else [value]
    return [i if isinstance(i, str) else json.dumps(i) for i in items]


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_run_instances_needs_the_stacks_launch_template_and_the_build_tag(path: Path) -> None:
    stage = path.stem.removeprefix("policy-")
    runs = [s for s in _ec2_statements(path) if "ec2:RunInstances" in s["Action"]]
    assert runs and all(s["Action"] == ["ec2:RunInstances"] for s in runs)
    for statement in runs:
        condition = statement["Condition"]
        if any("::image/*" in r for r in _resources(statement)):
            # The AMI: Amazon's own only (the public AL2023 parameter names one of them).
            assert condition == {"StringEquals": {"ec2:Owner": "amazon"}}
            continue
        assert condition["ArnLike"]["ec2:LaunchTemplate"] == {"Fn::Sub": LAUNCH_TEMPLATE_ARN}
        created = [r for r in _resources(statement) if r.endswith(('instance/*"}', 'volume/*"}'))]
        if created:
            # What the launch creates carries the build's tags, of this stage.
            assert condition["Null"] == {"aws:RequestTag/rlayer:build-id": "false"}
            assert condition["StringEquals"] == {"aws:RequestTag/rlayer:stage": stage}
    everything = {r for s in runs for r in _resources(s)}
    assert any("security-group/${BuildInstanceSecurityGroup.GroupId}" in r for r in everything)
    assert not any(r == "*" for r in everything)


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_tags_only_at_launch_and_termination_only_of_tagged_build_instances(path: Path) -> None:
    stage = path.stem.removeprefix("policy-")
    statements = _ec2_statements(path)
    [tags] = [s for s in statements if "ec2:CreateTags" in s["Action"]]
    assert tags["Action"] == ["ec2:CreateTags"]
    assert tags["Condition"] == {"StringEquals": {"ec2:CreateAction": "RunInstances"}}
    [ends] = [s for s in statements if "ec2:TerminateInstances" in s["Action"]]
    assert set(ends["Action"]) == {"ec2:TerminateInstances", "ec2:GetConsoleOutput"}
    assert [r for r in _resources(ends)] == [
        json.dumps(
            {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*"}
        )
    ]
    assert ends["Condition"] == {
        "Null": {"aws:ResourceTag/rlayer:build-id": "false"},
        "StringEquals": {"aws:ResourceTag/rlayer:stage": stage},
    }
    # DescribeInstances has no resource form: the only EC2 action on "*".
    on_star = {a for s in statements if s["Resource"] == "*" for a in s["Action"]}
    assert on_star == {"ec2:DescribeInstances"}


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_the_instance_role_goes_to_ec2_only_and_ssm_reads_only_the_ami_parameters(
    path: Path,
) -> None:
    statements = _ec2_statements(path)
    passes = [s for s in statements if s["Action"] == ["iam:PassRole"]]
    to_ec2 = [s for s in passes if s["Resource"] == {"Fn::GetAtt": ["BuildInstanceRole", "Arn"]}]
    assert len(to_ec2) == 1
    assert to_ec2[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    [ssm] = [s for s in statements if s["Action"] == ["ssm:GetParameter"]]
    assert ssm["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/"
        "ami-amazon-linux-latest/*"
    }


def test_the_build_instance_reaches_the_cache_only_and_launches_locked_down() -> None:
    resources = template.load_resources()["Resources"]
    role = resources["BuildInstanceRole"]["Properties"]
    [policy] = role["Policies"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert statement["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/cache/*"}
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "ec2.amazonaws.com"}]
    data = resources["BuildInstanceLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert "KeyName" not in data
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
    group = resources["BuildInstanceSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group
    assert [
        (e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in group["SecurityGroupEgress"]
    ] == [("tcp", 443, 443)]
