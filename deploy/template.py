"""The merge template: deploy/resources.yml completed from the ASL and the Chalice app.

``chalice package --merge-template`` deep-merges it into Chalice's SAM template. What is
derived here rather than written by hand in resources.yml, so that it cannot drift:

- the state machine's ``Definition`` (``state_machine.asl.json`` verbatim) and the
  ``DefinitionSubstitutions`` of its function placeholders: ``${<Id>FunctionArn}`` maps to
  ``!GetAtt <Id>.Arn``, where ``<Id>`` is the logical id Chalice gives the
  ``@app.lambda_function`` (its name in CamelCase, ``start_build`` -> ``StartBuild``);
- the state machine role's task permissions, read off the ASL's Task states;
- active tracing on every Chalice function (Chalice writes ``PassThrough`` per function,
  which a SAM ``Globals`` value cannot override), and the sizes of the functions that
  need more than Chalice's defaults (FUNCTION_SIZING);
- deletion policies per stage.

:func:`deploy.checks.verify` checks a packaged template (``sam.json``) against the same
rules.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from chalicelib.errors import ConfigurationError
from chalicelib.pipeline import PLACEHOLDER_RE, TASK_FUNCTIONS
from deploy import regional

REPO = Path(__file__).resolve().parent.parent
RESOURCES_FILE = REPO / "deploy" / "resources.yml"
ASL_FILE = REPO / "state_machine.asl.json"

STATE_MACHINE = "PipelineStateMachine"
STATE_MACHINE_ROLE = "StateMachineRole"
TASK_POLICY = "TaskIntegrations"
TABLE = "BuildsTable"
# The API Chalice packages (AWS::Serverless::Api); the merge adds its stage settings.
REST_API = "RestAPI"
# Kept when the stack is deleted or a replacement is forced, in these stages.
RETAIN_STAGES = frozenset({"prod"})
STATEFUL = ("BuildsTable", "ArtifactBucket", "SlackSecret")
FUNCTION_SUFFIX = "FunctionArn"
SAM_FUNCTION = "AWS::Serverless::Function"

# Functions that need more than Chalice's defaults (60 s, 128 MB); .chalice/config.json sets
# no per-function sizes, and these follow from what the functions do, not from the stage.
FUNCTION_SIZING: dict[str, dict[str, Any]] = {
    # Slack wants an answer within 3 s: more memory is more CPU for a cold start.
    "APIHandler": {"MemorySize": 512},
    # Streams both layer zips through /tmp and hashes them: CPU, disk and time.
    "ValidateArtifact": {"MemorySize": 1024, "Timeout": 300, "EphemeralStorage": {"Size": 1024}},
    # Lambda copies a layer from S3 while the call waits.
    "PublishLayers": {"MemorySize": 256, "Timeout": 300},
    # Creates or updates the canary (waiters up to 2 min each), then invokes it
    # (CANARY_TIMEOUT_S, 60 s by default, plus R's cold start).
    "RunCanary": {"MemorySize": 256, "Timeout": 600},
}

# Functions the app invokes by name (POST /releases/check queues the release check in the
# schedule's function): a fixed name built from the stack's, as RELEASE_CHECK_FUNCTION in
# resources.yml and the grant in .chalice/policy-<stage>.json are (a !Ref would be a cycle
# through the role every function shares).
FUNCTION_NAMES: dict[str, dict[str, str]] = {
    "CheckReleases": {"Fn::Sub": "${AWS::StackName}-check_releases"},
}

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
DYNAMODB_TASK = "arn:aws:states:::dynamodb:"


# -- YAML with CloudFormation's short tags -------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads ``!Ref``/``!GetAtt``/``!Sub``... as their long forms.

    A subclass, so the tags do not leak into every other SafeLoader of the process.
    """


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise ConfigurationError(f"unexpected YAML node {node!r}")
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_cfn_yaml(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=_CfnLoader)  # a SafeLoader subclass: safe
    if not isinstance(data, dict):
        raise ConfigurationError("a CloudFormation template must be a mapping")
    return data


def load_resources() -> dict[str, Any]:
    return load_cfn_yaml(RESOURCES_FILE.read_text())


def load_definition(path: Path | None = None) -> dict[str, Any]:
    path = path or ASL_FILE
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path.name} must hold a JSON object")
    return data


# -- reading the ASL -----------------------------------------------------------------------
def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def placeholders(definition: Mapping[str, Any]) -> set[str]:
    """Every ``${Name}`` in the definition (keys and values)."""
    return {m for s in _strings(definition) for m in PLACEHOLDER_RE.findall(s)}


def task_states(definition: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, state) of every Task, including those inside Parallel branches and Maps."""
    for name, state in definition.get("States", {}).items():
        if state.get("Type") == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from task_states(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from task_states(state[key])


def _function_placeholder(value: Any, where: str) -> str:
    match = PLACEHOLDER_RE.fullmatch(value) if isinstance(value, str) else None
    if not match or not match.group(1).endswith(FUNCTION_SUFFIX):
        raise ConfigurationError(
            f"{where}: the function must be a ${{<Name>{FUNCTION_SUFFIX}}} placeholder, "
            f"got {value!r}"
        )
    return match.group(1)


def task_integrations(definition: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(function placeholders invoked, DynamoDB actions used directly) by the Task states.

    Any other integration is refused: it would need permissions nobody has reviewed.
    """
    functions: set[str] = set()
    dynamodb: set[str] = set()
    for name, state in task_states(definition):
        resource = state.get("Resource", "")
        if resource.startswith(LAMBDA_INVOKE):
            params = state.get("Parameters") or state.get("Arguments") or {}
            target = params.get("FunctionName", params.get("FunctionName.$"))
            functions.add(_function_placeholder(target, f"state {name}"))
        elif resource.startswith(DYNAMODB_TASK):
            operation = resource.removeprefix(DYNAMODB_TASK).split(".")[0]
            dynamodb.add("dynamodb:" + operation[:1].upper() + operation[1:])
        elif PLACEHOLDER_RE.fullmatch(resource):
            functions.add(_function_placeholder(resource, f"state {name}"))
        else:
            raise ConfigurationError(
                f"state {name}: integration {resource!r} has no permissions in the "
                "deployment; add them to deploy/template.py and the README"
            )
    return functions, dynamodb


# -- the Chalice side ----------------------------------------------------------------------
def chalice_functions(app: Any) -> tuple[dict[str, str], list[str]]:
    """The app's functions as `chalice package` names them in the SAM template.

    Returns ({logical id: name} of the ``@app.lambda_function``s, logical ids of every
    function: the API handler, the lambda functions and the event handlers).
    """
    from chalice.utils import to_cfn_resource_name  # the naming `chalice package` uses

    tasks = {to_cfn_resource_name(f.name): f.name for f in app.pure_lambda_functions}
    handlers = [to_cfn_resource_name(e.name) for e in app.event_sources]
    api = ["APIHandler"] if app.routes else []
    return tasks, [*api, *sorted(tasks), *sorted(handlers)]


def logical_id(placeholder: str) -> str:
    """The template's logical id of the function behind an ASL placeholder: the registry
    (chalicelib.pipeline.TASKS) names the function, Chalice's rule names its resource."""
    from chalice.utils import to_cfn_resource_name

    function = TASK_FUNCTIONS.get(placeholder)
    if function is None:
        raise ConfigurationError(f"${{{placeholder}}} is no task of chalicelib.pipeline.TASKS")
    return str(to_cfn_resource_name(function))


# -- assembling ----------------------------------------------------------------------------
def merge_template(
    stage: str,
    definition: Mapping[str, Any],
    functions: Mapping[str, str],
    traced: Iterable[str] = (),
    *,
    resources: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The template to pass to ``chalice package --merge-template``.

    ``functions`` maps each Chalice lambda function's logical id to its name, ``traced``
    lists every function's logical id (see :func:`chalice_functions`). Raises
    ConfigurationError when the ASL uses a placeholder nothing fills or a function the app
    does not define.
    """
    tpl = copy.deepcopy(dict(resources if resources is not None else load_resources()))
    res = tpl["Resources"]
    props = res[STATE_MACHINE]["Properties"]
    props["Definition"] = copy.deepcopy(dict(definition))

    used = placeholders(definition)
    invoked, dynamodb_actions = task_integrations(definition)
    static = props.get("DefinitionSubstitutions", {})
    subs: dict[str, Any] = {}
    problems: list[str] = []
    for name in sorted(used):
        if name.endswith(FUNCTION_SUFFIX):
            target = logical_id(name)
            if target not in functions:
                problems.append(
                    f"${{{name}}}: the app has no @app.lambda_function whose logical id is "
                    f"{target!r} (has: {', '.join(sorted(functions)) or 'none'})"
                )
            subs[name] = {"Fn::GetAtt": [target, "Arn"]}
        elif name in static:
            subs[name] = static[name]
        else:
            problems.append(f"${{{name}}}: no substitution in deploy/resources.yml")
    if problems:
        raise ConfigurationError("state_machine.asl.json: " + "; ".join(problems))
    props["DefinitionSubstitutions"] = subs

    statements: list[dict[str, Any]] = []
    if invoked:
        arns: list[Any] = []
        for name in sorted(invoked):
            arn = {"Fn::GetAtt": [logical_id(name), "Arn"]}
            # Versions and aliases of the same function (lambda:invoke may qualify it).
            arns += [arn, {"Fn::Sub": f"${{{logical_id(name)}.Arn}}:*"}]
        statements.append(
            {
                "Sid": "InvokeTaskFunctions",
                "Effect": "Allow",
                "Action": ["lambda:InvokeFunction"],
                "Resource": arns,
            }
        )
    if dynamodb_actions:
        statements.append(
            {
                "Sid": "DirectTableUpdates",
                "Effect": "Allow",
                "Action": sorted(dynamodb_actions),
                "Resource": {"Fn::GetAtt": [TABLE, "Arn"]},
            }
        )
    policies = res[STATE_MACHINE_ROLE]["Properties"]["Policies"]
    task_policy = next(p for p in policies if p["PolicyName"] == TASK_POLICY)
    if statements:
        task_policy["PolicyDocument"]["Statement"] = statements
    else:
        policies.remove(task_policy)

    # Powertools' Tracer is in every function; Chalice writes Tracing per function.
    for function_id in traced:
        props = {"Tracing": "Active", **FUNCTION_SIZING.get(function_id, {})}
        if function_id in FUNCTION_NAMES:
            props["FunctionName"] = FUNCTION_NAMES[function_id]
        res[function_id] = {"Properties": props}

    # API Gateway's stage throttling (Chalice's RestAPI, merged): what bounds the public
    # catalog routes of a stage that opens them.
    res[REST_API] = {
        "Properties": {
            "MethodSettings": [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
                    "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
                }
            ]
        }
    }

    # The stage's regions (REGIONS): grants named region by region (deploy/regional.py);
    # the stack's own among them is granted twice over, harmlessly.
    listed = regional.stage_regions(stage)
    if listed:
        res[regional.POLICY] = regional.grants(listed, [regional.role(f) for f in traced])
        tpl.setdefault("Metadata", {})[regional.METADATA_KEY] = listed

    policy = "Retain" if stage in RETAIN_STAGES else "Delete"
    for name in STATEFUL:
        res[name]["DeletionPolicy"] = policy
        res[name]["UpdateReplacePolicy"] = policy
    if stage in RETAIN_STAGES:
        res[TABLE]["Properties"]["DeletionProtectionEnabled"] = True
    return tpl
