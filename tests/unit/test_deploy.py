"""The merge template (deploy/): ASL substitutions, table, environment, roles (no AWS)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.aws.items import table_definition
from chalicelib.errors import ConfigurationError
from chalicelib.settings import Settings
from deploy import checks, template

REPO = template.REPO
POLICY_FILES = sorted((REPO / ".chalice").glob("policy-*.json"))

# A small ASL in the shape of the pipeline's: lambda:invoke tasks on function placeholders,
# a direct DynamoDB update, a Parallel branch and a Map, plus non-function placeholders.
ASL: dict[str, Any] = {
    "StartAt": "MarkBuilding",
    "States": {
        "MarkBuilding": {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:updateItem",
            "Parameters": {"TableName": "${TableName}", "Key": {}},
            "Next": "StartBuild",
        },
        "StartBuild": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${StartBuildFunctionArn}", "Payload.$": "$"},
            "Next": "Both",
        },
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Check",
                    "States": {
                        "Check": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": "${CheckBuildFunctionArn}"},
                            "End": True,
                        }
                    },
                }
            ],
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemProcessor": {
                "StartAt": "Publish",
                "States": {
                    "Publish": {
                        "Type": "Task",
                        "Resource": "${PublishLayersFunctionArn}",
                        "End": True,
                    }
                },
            },
            "Next": "Wait",
        },
        "Wait": {"Type": "Wait", "Seconds": 10, "Comment": "${MaxPolls} polls", "End": True},
    },
}
FUNCTIONS = {"StartBuild": "start_build", "CheckBuild": "check_build", "PublishLayers": "p"}
TRACED = ["APIHandler", *FUNCTIONS]


def merged(stage: str = "dev", asl: dict[str, Any] | None = None) -> dict[str, Any]:
    return template.merge_template(stage, asl or ASL, FUNCTIONS, TRACED)


def with_chalice_roles(tpl: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """The merge template plus what Chalice adds that the checks look at: a role per
    function with the stage's policy file, and the functions themselves."""
    out = copy.deepcopy(tpl)
    for logical_id in TRACED:
        out["Resources"][f"{logical_id}Role"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {"Policies": [{"PolicyName": "p", "PolicyDocument": policy}]},
        }
        out["Resources"][logical_id] = {
            "Type": template.SAM_FUNCTION,
            "Properties": {"Role": {"Fn::GetAtt": [f"{logical_id}Role", "Arn"]}, "Tracing": "x"},
        }
    return out


def load_policy(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# -- YAML ----------------------------------------------------------------------------------
def test_short_tags_become_long_forms_without_touching_safe_load() -> None:
    text = """
    A: !Ref Table
    B: !GetAtt Table.Arn
    C: !Sub ["${X}-y", {X: !Ref Bucket}]
    D: !Join [",", [!Ref A, !GetAtt B.Arn]]
    """
    assert template.load_cfn_yaml(text) == {
        "A": {"Ref": "Table"},
        "B": {"Fn::GetAtt": ["Table", "Arn"]},
        "C": {"Fn::Sub": ["${X}-y", {"X": {"Ref": "Bucket"}}]},
        "D": {"Fn::Join": [",", [{"Ref": "A"}, {"Fn::GetAtt": ["B", "Arn"]}]]},
    }
    # The tags are the subclass's own: plain safe_load still refuses them.
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("A: !Ref Table")


# -- the table -----------------------------------------------------------------------------
def test_table_mirrors_the_store_definition() -> None:
    table = template.load_resources()["Resources"]["BuildsTable"]["Properties"]
    expected = table_definition("ignored")
    del expected["TableName"]  # CloudFormation names it; the functions get it as TABLE_NAME
    for key, value in expected.items():
        assert table[key] == value, key
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


# -- substitutions -------------------------------------------------------------------------
def test_every_placeholder_is_substituted_and_functions_map_to_their_arns() -> None:
    props = merged()["Resources"]["PipelineStateMachine"]["Properties"]
    assert props["Definition"] == ASL
    assert props["DefinitionSubstitutions"] == {
        "CheckBuildFunctionArn": {"Fn::GetAtt": ["CheckBuild", "Arn"]},
        "MaxPolls": {"Ref": "BuildMaxPolls"},
        "PublishLayersFunctionArn": {"Fn::GetAtt": ["PublishLayers", "Arn"]},
        "StartBuildFunctionArn": {"Fn::GetAtt": ["StartBuild", "Arn"]},
        "TableName": {"Ref": "BuildsTable"},
    }
    # PollIntervalSeconds is offered by resources.yml but unused here: not carried over.
    assert "PollIntervalSeconds" not in props["DefinitionSubstitutions"]


def test_a_function_placeholder_without_a_function_is_refused() -> None:
    asl = copy.deepcopy(ASL)
    asl["States"]["StartBuild"]["Parameters"]["FunctionName"] = "${RunCanaryFunctionArn}"
    with pytest.raises(ConfigurationError, match=r"RunCanaryFunctionArn.*'RunCanary'"):
        merged(asl=asl)


def test_a_placeholder_nothing_fills_is_refused() -> None:
    asl = copy.deepcopy(ASL)
    asl["States"]["Wait"]["Comment"] = "${Surprise}"
    with pytest.raises(ConfigurationError, match=r"\$\{Surprise\}: no substitution"):
        merged(asl=asl)


def test_a_task_function_must_be_a_placeholder() -> None:
    asl = copy.deepcopy(ASL)
    literal = "arn:aws:lambda:us-east-1:123456789012:function:x"
    asl["States"]["StartBuild"]["Parameters"]["FunctionName"] = literal
    with pytest.raises(ConfigurationError, match="placeholder"):
        merged(asl=asl)


def test_an_integration_without_reviewed_permissions_is_refused() -> None:
    asl = copy.deepcopy(ASL)
    asl["States"]["StartBuild"]["Resource"] = "arn:aws:states:::aws-sdk:codebuild:startBuild"
    with pytest.raises(ConfigurationError, match="no permissions in the deployment"):
        merged(asl=asl)


# -- the state machine's role --------------------------------------------------------------
def test_state_machine_role_invokes_exactly_the_task_functions() -> None:
    role = merged()["Resources"]["StateMachineRole"]["Properties"]
    tasks = next(p for p in role["Policies"] if p["PolicyName"] == template.TASK_POLICY)
    by_sid = {s["Sid"]: s for s in tasks["PolicyDocument"]["Statement"]}
    assert by_sid["InvokeTaskFunctions"]["Action"] == ["lambda:InvokeFunction"]
    invoked = checks.references(by_sid["InvokeTaskFunctions"]["Resource"])
    assert invoked == {"CheckBuild", "PublishLayers", "StartBuild"}
    assert by_sid["DirectTableUpdates"] == {
        "Sid": "DirectTableUpdates",
        "Effect": "Allow",
        "Action": ["dynamodb:UpdateItem"],
        "Resource": {"Fn::GetAtt": ["BuildsTable", "Arn"]},
    }


def test_no_task_integrations_means_no_task_policy() -> None:
    asl = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}
    role = merged(asl=asl)["Resources"]["StateMachineRole"]["Properties"]
    assert template.TASK_POLICY not in [p["PolicyName"] for p in role["Policies"]]


# -- stages, tracing -----------------------------------------------------------------------
def test_prod_keeps_its_data_and_dev_does_not() -> None:
    prod, dev = merged("prod")["Resources"], merged("dev")["Resources"]
    for name in template.STATEFUL:
        assert prod[name]["DeletionPolicy"] == prod[name]["UpdateReplacePolicy"] == "Retain"
        assert dev[name]["DeletionPolicy"] == dev[name]["UpdateReplacePolicy"] == "Delete"
    assert prod["BuildsTable"]["Properties"]["DeletionProtectionEnabled"] is True
    assert "DeletionProtectionEnabled" not in dev["BuildsTable"]["Properties"]


def test_every_function_is_traced_and_the_heavy_ones_sized() -> None:
    resources = merged()["Resources"]
    for logical_id in TRACED:
        assert resources[logical_id]["Properties"]["Tracing"] == "Active"
    # Sizes apply to the functions of FUNCTION_SIZING that exist in the app.
    assert resources["PublishLayers"]["Properties"]["Timeout"] >= 300
    assert "RunCanary" not in resources  # not one of this test's FUNCTIONS


def test_run_canary_outlives_the_canary_it_waits_for() -> None:
    # Up to two 120-attempt x 1 s waiters, then the canary's own timeout.
    timeout = template.FUNCTION_SIZING["RunCanary"]["Timeout"]
    assert timeout >= 2 * 120 + Settings().canary_timeout_s + 60


# -- environment: what chalicelib/settings.py reads ----------------------------------------
def test_function_environment_names_are_settings_the_code_reads() -> None:
    env = merged()["Globals"]["Function"]["Environment"]["Variables"]
    fields = {
        (info.validation_alias or name).upper()  # type: ignore[union-attr]
        for name, info in Settings.model_fields.items()
    }
    assert set(env) <= fields, set(env) - fields
    assert {
        "TABLE_NAME",
        "ARTIFACT_BUCKET",
        "STATE_MACHINE_ARN",
        "BUILD_BACKEND",
        "CODEBUILD_PROJECT_X86_64",
        "CODEBUILD_PROJECT_ARM64",
        "CANARY_ROLE_ARN",
        "CANARY_FUNCTION_PREFIX",
        "SLACK_SECRET_PARAMETER",
    } <= set(env)
    assert env["BUILD_BACKEND"] == "codebuild"


def test_state_machine_arn_is_built_from_its_fixed_name_not_a_reference() -> None:
    # The cycle breaker: functions must not !Ref the state machine (it !GetAtts them).
    tpl = merged()
    env = tpl["Globals"]["Function"]["Environment"]["Variables"]
    name = tpl["Resources"]["PipelineStateMachine"]["Properties"]["StateMachineName"]
    assert name == {"Fn::Sub": "${AWS::StackName}-pipeline"}
    assert env["STATE_MACHINE_ARN"]["Fn::Sub"].endswith(":stateMachine:" + name["Fn::Sub"])
    for path in POLICY_FILES:
        start = next(
            s for s in load_policy(path)["Statement"] if "states:StartExecution" in s["Action"]
        )
        assert start["Resource"] == env["STATE_MACHINE_ARN"], path.name


def test_canary_names_match_what_the_roles_allow() -> None:
    tpl = merged()
    prefix = tpl["Globals"]["Function"]["Environment"]["Variables"]["CANARY_FUNCTION_PREFIX"]
    assert prefix == {"Fn::Sub": "${AWS::StackName}-canary"}
    canary_logs = tpl["Resources"]["CanaryRole"]["Properties"]["Policies"][0]
    for arn in canary_logs["PolicyDocument"]["Statement"][0]["Resource"]:
        assert "/aws/lambda/" + prefix["Fn::Sub"] + "*" in arn["Fn::Sub"]
    for path in POLICY_FILES:
        create = next(
            s for s in load_policy(path)["Statement"] if "lambda:CreateFunction" in s["Action"]
        )
        assert create["Resource"]["Fn::Sub"].endswith(":function:" + prefix["Fn::Sub"] + "*")


def test_the_release_check_function_is_named_as_the_api_invokes_it() -> None:
    # POST /releases/check invokes it by the name in RELEASE_CHECK_FUNCTION.
    tpl = template.merge_template("dev", ASL, FUNCTIONS, [*TRACED, "CheckReleases"])
    env = tpl["Globals"]["Function"]["Environment"]["Variables"]
    name = tpl["Resources"]["CheckReleases"]["Properties"]["FunctionName"]
    assert env["RELEASE_CHECK_FUNCTION"] == name == {"Fn::Sub": "${AWS::StackName}-check_releases"}
    for path in POLICY_FILES:
        invoke = next(
            s for s in load_policy(path)["Statement"] if s["Action"] == ["lambda:InvokeFunction"]
        )
        assert invoke["Resource"]["Fn::Sub"].endswith(":function:" + name["Fn::Sub"])


# -- cycles --------------------------------------------------------------------------------
def test_the_merged_stack_has_no_dependency_cycle() -> None:
    policy = load_policy(REPO / ".chalice" / "policy-dev.json")
    assert checks.dependency_cycle(with_chalice_roles(merged(), policy)) is None


def test_a_cycle_through_sam_globals_is_found() -> None:
    policy = load_policy(REPO / ".chalice" / "policy-dev.json")
    tpl = with_chalice_roles(merged(), policy)
    env = tpl["Globals"]["Function"]["Environment"]["Variables"]
    env["STATE_MACHINE_ARN"] = {"Ref": "PipelineStateMachine"}
    cycle = checks.dependency_cycle(tpl)
    assert cycle is not None and "PipelineStateMachine" in cycle


# -- least privilege -----------------------------------------------------------------------
@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_policy_files_and_stack_roles_are_least_privilege(path: Path) -> None:
    tpl = with_chalice_roles(merged(), load_policy(path))
    assert checks.policy_findings(tpl) == []


def test_stage_policies_grant_the_same_actions() -> None:
    # Resource names come from the stack, so stages differ in nothing a role may do.
    assert [p.name for p in POLICY_FILES] == ["policy-dev.json", "policy-prod.json"]
    actions = [
        sorted(a for s in load_policy(p)["Statement"] for a in s["Action"]) for p in POLICY_FILES
    ]
    assert actions[0] == actions[1]


def test_star_resources_are_only_for_actions_aws_offers_on_star() -> None:
    tpl = with_chalice_roles(merged(), load_policy(REPO / ".chalice" / "policy-dev.json"))
    star = {
        a
        for _, s in checks.identity_statements(tpl)
        if s.get("Resource") == "*"
        for a in s["Action"]
    }
    assert star and star <= set(checks.STAR_RESOURCE_ACTIONS)


ACCOUNT_FN = "${AWS::AccountId}:function:*"
BAD_GRANTS = [
    ({"Action": ["s3:*"], "Resource": {"Fn::Sub": "${ArtifactBucket.Arn}/*"}}, "not one exact"),
    ({"Action": ["*"], "Resource": {"Fn::GetAtt": ["BuildsTable", "Arn"]}}, "not one exact"),
    ({"Action": ["dynamodb:GetItem"], "Resource": "*"}, "Resource '*' for dynamodb:GetItem"),
    (
        {"Action": ["dynamodb:GetItem"], "Resource": "arn:aws:dynamodb:us-east-1:1:table/x"},
        "fixed ARN",
    ),
    (
        {"Action": ["dynamodb:GetItem"], "Resource": {"Fn::Sub": "arn:aws:dynamodb:*:*:table/x"}},
        "region and account",
    ),
    (
        {
            "Action": ["lambda:InvokeFunction"],
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:" + ACCOUNT_FN},
        },
        "names no resource of this stack",
    ),
    ({"Action": ["s3:GetObject"], "Resource": {"Ref": "SomeoneElsesBucket"}}, "not a resource"),
    ({"NotAction": ["iam:*"], "Resource": "*"}, "NotAction"),
]


@pytest.mark.parametrize(("grant", "finding"), BAD_GRANTS)
def test_broad_grants_are_findings(grant: dict[str, Any], finding: str) -> None:
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **grant}]}
    findings = checks.policy_findings(with_chalice_roles(merged(), policy))
    assert findings and all(finding in f for f in findings), findings


def test_managed_policies_are_findings() -> None:
    tpl = merged()
    tpl["Resources"]["CanaryRole"]["Properties"]["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/AdministratorAccess"
    ]
    assert checks.policy_findings(tpl) == [
        "CanaryRole: managed policies are not reviewed here; inline them"
    ]


# -- verify() on a packaged template -------------------------------------------------------
def test_verify_reports_gaps_between_template_and_asl() -> None:
    tpl = with_chalice_roles(merged(), load_policy(REPO / ".chalice" / "policy-dev.json"))
    assert checks.verify(tpl, ASL) == []

    drifted = copy.deepcopy(ASL)
    drifted["States"]["Wait"]["Comment"] = "${Extra}"
    problems = checks.verify(tpl, drifted)
    assert "the state machine's Definition is not state_machine.asl.json" in problems
    assert "${Extra} has no substitution" in problems

    broken = copy.deepcopy(tpl)
    subs = broken["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    subs["CheckBuildFunctionArn"] = {"Fn::GetAtt": ["BuildsTable", "Arn"]}
    assert checks.verify(broken, ASL) == [
        "${CheckBuildFunctionArn} -> {'Fn::GetAtt': ['BuildsTable', 'Arn']} is not a "
        "function of this template"
    ]


# -- the real ASL and app ------------------------------------------------------------------
def test_the_pipeline_asl_is_fully_mapped_onto_the_app() -> None:
    if not template.ASL_FILE.exists():
        pytest.fail("state_machine.asl.json is missing")
    import app

    definition = template.load_definition()
    functions, traced = template.chalice_functions(app.app)
    tpl = template.merge_template("dev", definition, functions, traced)
    subs = tpl["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert set(subs) == template.placeholders(definition)
    arns = {k: v for k, v in subs.items() if k.endswith(template.FUNCTION_SUFFIX)}
    assert arns, "the ASL invokes no function"
    assert {v["Fn::GetAtt"][0] for v in arns.values()} <= set(functions)
    assert set(template.FUNCTION_SIZING) <= set(traced)


def test_placeholder_names_follow_chalice_logical_ids() -> None:
    # The ASL's contract (chalicelib.pipeline.TASK_FUNCTIONS) and Chalice's naming agree:
    # ${<Id>FunctionArn} -> the function `chalice package` calls <Id>.
    from chalice.utils import to_cfn_resource_name

    from chalicelib.pipeline import TASK_FUNCTIONS

    for placeholder, name in TASK_FUNCTIONS.items():
        assert placeholder == to_cfn_resource_name(name) + template.FUNCTION_SUFFIX


def test_poll_defaults_match_the_local_stack_and_outlast_codebuild() -> None:
    from rlayer.local import asl

    params = template.load_resources()["Parameters"]
    poll, polls = params["BuildPollSeconds"]["Default"], params["BuildMaxPolls"]["Default"]
    assert (poll, polls) == (asl.DEFAULT_POLL_INTERVAL_S, asl.DEFAULT_MAX_POLLS)
    # CodeBuild's own timeout ends a stuck build before the state machine gives up on it.
    assert params["BuildTimeoutMinutes"]["Default"] * 60 < poll * polls
