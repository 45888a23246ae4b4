"""Checks of a packaged template (``sam.json``): the definition and its substitutions, no
dependency cycle, least privilege for every role. ``make package`` refuses to finish when
:func:`verify` finds anything; the tests run the same checks on crafted templates.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from deploy.template import (
    FUNCTION_SUFFIX,
    SAM_FUNCTION,
    STATE_MACHINE,
    placeholders,
)


# -- checking the packaged template --------------------------------------------------------
def verify(template: Mapping[str, Any], definition: Mapping[str, Any]) -> list[str]:
    """What is wrong with a packaged template; empty when nothing is.

    The state machine's definition is the ASL file, every placeholder in it has a
    substitution, every function ARN substituted is a function of this template, no
    resources depend on each other in a cycle, and every role is least-privilege
    (:func:`policy_findings`).
    """
    problems = _verify_definition(template, definition)
    cycle = dependency_cycle(template)
    if cycle:
        problems.append("dependency cycle: " + " -> ".join(cycle))
    problems += policy_findings(template)
    return problems


def _verify_definition(template: Mapping[str, Any], definition: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    resources = template.get("Resources", {})
    machine = resources.get(STATE_MACHINE, {}).get("Properties", {})
    if machine.get("Definition") != definition:
        problems.append("the state machine's Definition is not state_machine.asl.json")
    subs = machine.get("DefinitionSubstitutions", {})
    for name in sorted(placeholders(definition) - set(subs)):
        problems.append(f"${{{name}}} has no substitution")
    for name, value in sorted(subs.items()):
        if not name.endswith(FUNCTION_SUFFIX):
            continue
        target = value.get("Fn::GetAtt", [None])[0] if isinstance(value, dict) else None
        if target is None or resources.get(target, {}).get("Type") != SAM_FUNCTION:
            problems.append(f"${{{name}}} -> {value!r} is not a function of this template")
    return problems


# -- references and cycles -----------------------------------------------------------------
_SUB_REF_RE = re.compile(r"\$\{([^!}][^}]*)\}")


def sub_references(value: Any) -> set[str]:
    """Names a Fn::Sub refers to (``${X}``, ``${X.Attr}``, ``${AWS::Region}``)."""
    text, local = (value[0], set(value[1])) if isinstance(value, list) else (value, set())
    names = {m.split(".", 1)[0] for m in _SUB_REF_RE.findall(text)}
    return names - local


def references(value: Any) -> set[str]:
    """Logical ids and parameters a template fragment refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                target = item[0] if isinstance(item, list) else str(item).split(".", 1)[0]
                found.add(target)
            elif key == "Fn::Sub":
                found |= sub_references(item)
                if isinstance(item, list):
                    found |= references(item[1])
            else:
                found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def dependency_cycle(template: Mapping[str, Any]) -> list[str] | None:
    """A cycle among the resources, or None.

    cfn-lint does not see cycles that go through SAM's ``Globals`` (checked here): the
    functions get the Globals' environment, and a ``!Ref`` there to a resource that needs
    the functions' ARNs is a cycle CloudFormation only reports at deploy time.
    """
    resources = template.get("Resources", {})
    shared = references(template.get("Globals", {}).get("Function", {}))
    graph: dict[str, set[str]] = {}
    for name, resource in resources.items():
        deps = references(resource.get("Properties", {}))
        depends_on = resource.get("DependsOn", [])
        deps |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
        if resource.get("Type") == SAM_FUNCTION:
            deps |= shared
        graph[name] = {d for d in deps if d in resources and d != name}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return [str(n) for n in exc.args[1]]
    return None


# -- least privilege -----------------------------------------------------------------------
# Actions AWS offers on Resource "*" only (no resource-level permissions), and why we grant
# each. Any other action on "*" is a finding.
STAR_RESOURCE_ACTIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
        ),
        "X-Ray has no resource-level permissions; functions and the state machine send traces",
    ),
    **dict.fromkeys(
        (
            "logs:CreateLogDelivery",
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
            "logs:DescribeLogGroups",
        ),
        "CloudWatch Logs' log-delivery API has no resource-level permissions; Step Functions "
        "needs it to write the state machine's execution logs",
    ),
    "lambda:ListLayerVersions": (
        "Lambda's ListLayerVersions has no resource-level permissions; the pipeline lists "
        "a layer's versions to find a runtime layer it can reuse"
    ),
    "ec2:DescribeInstances": (
        "EC2's DescribeInstances has no resource-level permissions; CheckBuild and the "
        "reaper read the build instances' state"
    ),
}
# Resources the pipeline names at run time from a build spec, not the stack: allowed by
# name prefix. Layer names are r-<version>-<arch>[-pkgs-<hash>] (BuildSpec). An EC2 build
# creates its instance, volume and network interface at launch (the grants are conditioned
# on the stack's launch template and the build tag), in the subnet the stage names; the
# AMI and its SSM parameter are AWS's own (the grants name Amazon's).
RUN_TIME_NAMES = (
    ":layer:r-*",
    ":instance/*",
    ":volume/*",
    ":network-interface/*",
    ":subnet/*",
    "::image/*",
    "::parameter/aws/service/ami-amazon-linux-latest/*",
)
_ACTION_RE = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
_PSEUDO = frozenset({"AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::URLSuffix"})
ROLE_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


def identity_statements(
    template: Mapping[str, Any],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) of every identity-policy statement of the template's roles."""
    for name, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        props = resource.get("Properties", {})
        documents: list[tuple[str, Any]] = []
        if kind == "AWS::IAM::Role":
            documents = [
                (f"{name}/{p.get('PolicyName')}", p.get("PolicyDocument", {}))
                for p in props.get("Policies", [])
            ]
        elif kind in ROLE_TYPES:
            documents = [(name, props.get("PolicyDocument", {}))]
        for where, document in documents:
            statements = document.get("Statement", [])
            for i, statement in enumerate(
                [statements] if isinstance(statements, dict) else statements
            ):
                yield f"{where}[{statement.get('Sid', i)}]", statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_findings(template: Mapping[str, Any]) -> list[str]:
    """Every grant broader than least privilege in the template's roles.

    - an action with a wildcard, NotAction or NotResource, a managed policy attached;
    - Resource "*" for an action not in STAR_RESOURCE_ACTIONS;
    - a resource that is not this stack's: it must be a Ref/GetAtt of a resource of the
      template, or a Fn::Sub naming one (or the stack's name) with the account and region
      given as ``${AWS::AccountId}``/``${AWS::Region}``, or a RUN_TIME_NAMES pattern.
    """
    resources = template.get("Resources", {})
    parameters = set(template.get("Parameters", {}))
    # The stage's other regions, which grants may name literally (deploy/regional.py).
    regions = frozenset(template.get("Metadata", {}).get("RlayerRegions", []))
    findings: list[str] = []
    for name, resource in resources.items():
        if resource.get("Type") == "AWS::IAM::Role" and resource.get("Properties", {}).get(
            "ManagedPolicyArns"
        ):
            findings.append(f"{name}: managed policies are not reviewed here; inline them")
    for where, statement in identity_statements(template):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement or "NotResource" in statement:
            findings.append(f"{where}: NotAction/NotResource grant more than they name")
            continue
        actions = [str(a) for a in _as_list(statement.get("Action", []))]
        for action in actions:
            if not _ACTION_RE.match(action):
                findings.append(f"{where}: action {action!r} is not one exact action")
        for value in _as_list(statement.get("Resource", [])):
            if value == "*":
                broad = [a for a in actions if a not in STAR_RESOURCE_ACTIONS]
                if broad:
                    findings.append(f"{where}: Resource '*' for {', '.join(broad)}")
                continue
            problem = _resource_scope(value, resources, parameters, regions)
            if problem:
                findings.append(f"{where}: {problem}")
    return findings


def _resource_scope(
    value: Any,
    resources: Mapping[str, Any],
    parameters: set[str],
    regions: frozenset[str] = frozenset(),
) -> str | None:
    if isinstance(value, dict) and ("Ref" in value or "Fn::GetAtt" in value):
        missing = references(value) - set(resources)
        return f"{value!r} is not a resource of this stack" if missing else None
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"][0] if isinstance(value["Fn::Sub"], list) else value["Fn::Sub"]
        names = sub_references(value["Fn::Sub"])
        unknown = names - set(resources) - parameters - _PSEUDO - {"AWS::StackName"}
        if unknown:
            return f"{text!r} refers to {', '.join(sorted(unknown))}, not in this stack"
        if text.startswith("arn:"):
            # arn:partition:service:region:account:...; region and account are empty for
            # S3 buckets. Pseudo parameters hold "::", so they are swapped out first.
            plain = re.sub(r"\$\{AWS::(\w+)\}", r"<\1>", text)
            parts = plain.split(":")
            if len(parts) < 6:
                return f"{text!r} is not an ARN"
            if parts[3] not in ("", "<Region>", *regions) or parts[4] not in ("", "<AccountId>"):
                return f"{text!r}: region and account must be this stack's"
        owned = names & set(resources) or "AWS::StackName" in names or names & parameters
        if not owned and not any(p in text for p in RUN_TIME_NAMES):
            return f"{text!r} names no resource of this stack"
        return None
    return f"{value!r} is a fixed ARN, not this stack's resource"
