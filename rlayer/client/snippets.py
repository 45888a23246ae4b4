"""Copy-ready snippets that attach the latest layers to a function (SAM, Terraform, CDK)."""

from __future__ import annotations

import json
from typing import Any

import yaml

FORMATS = ("sam", "terraform", "cdk")
RUNTIME = "provided.al2023"
# The R handler file.function the runtime's loop sources (handler.R, function handler).
HANDLER = "handler.handler"


def sam(latest: dict[str, Any]) -> str:
    resource = {
        "RFunction": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Runtime": RUNTIME,
                "Architectures": [latest["architecture"]],
                "Handler": HANDLER,
                "CodeUri": "function/",
                "MemorySize": 1024,
                "Timeout": 60,
                "Layers": list(latest["arns"]),
            },
        }
    }
    return f"# R {latest['r_version']} in {latest['region']}\n" + yaml.safe_dump(
        {"Resources": resource}, sort_keys=False
    )


def terraform(latest: dict[str, Any]) -> str:
    # HCL strings are JSON strings; there is no HCL writer among our dependencies.
    arns = "".join(f"    {json.dumps(arn)},\n" for arn in latest["arns"])
    return (
        f"# R {latest['r_version']} in {latest['region']}\n"
        'resource "aws_lambda_function" "r_function" {\n'
        '  function_name = "r-function"\n'
        "  role          = aws_iam_role.r_function.arn\n"
        f"  runtime       = {json.dumps(RUNTIME)}\n"
        f"  architectures = [{json.dumps(latest['architecture'])}]\n"
        f"  handler       = {json.dumps(HANDLER)}\n"
        '  filename      = "function.zip"\n'
        "  memory_size   = 1024\n"
        "  timeout       = 60\n"
        "  layers = [\n"
        f"{arns}"
        "  ]\n"
        "}\n"
    )


def cdk(latest: dict[str, Any]) -> str:
    """CDK in Python (aws_cdk.aws_lambda)."""
    arch = "ARM_64" if latest["architecture"] == "arm64" else "X86_64"
    layers = "".join(
        f"        lambda_.LayerVersion.from_layer_version_arn(self, {json.dumps(_id(la))}, "
        f"{json.dumps(la['arn'])}),\n"
        for la in latest["layers"]
    )
    return (
        f"# R {latest['r_version']} in {latest['region']}\n"
        "from aws_cdk import aws_lambda as lambda_\n\n"
        "fn = lambda_.Function(\n"
        "    self,\n"
        '    "RFunction",\n'
        "    runtime=lambda_.Runtime.PROVIDED_AL2023,\n"
        f"    architecture=lambda_.Architecture.{arch},\n"
        f"    handler={json.dumps(HANDLER)},\n"
        '    code=lambda_.Code.from_asset("function"),\n'
        "    layers=[\n"
        f"{layers}"
        "    ],\n"
        ")\n"
    )


def _id(layer: dict[str, Any]) -> str:
    return "RRuntimeLayer" if layer["kind"] == "runtime" else "RPackagesLayer"


def snippet(kind: str, latest: dict[str, Any]) -> str:
    return {"sam": sam, "terraform": terraform, "cdk": cdk}[kind](latest)
