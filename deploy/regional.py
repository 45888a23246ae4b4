"""A stage's other regions: their staging stacks (``deploy/regional.yml``) and the
functions' grants on each region's staging bucket and layers, named region by region.

The regions are the stage's ``REGIONS`` in ``.chalice/config.json`` (what the functions
read at run time too); the stack's own region needs nothing more than the stack.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".chalice" / "config.json"
TEMPLATE = Path(__file__).with_name("regional.yml")
POLICY = "RegionalLayerGrants"
# Where the checks (deploy/checks.py) read which literal regions a grant may name.
METADATA_KEY = "RlayerRegions"


def stage_regions(stage: str, config: Path = CONFIG) -> list[str]:
    """The stage's REGIONS (the stage's own environment over the app's)."""
    data = json.loads(config.read_text())
    env = {
        **data.get("environment_variables", {}),
        **data.get("stages", {}).get(stage, {}).get("environment_variables", {}),
    }
    return [r.strip() for r in str(env.get("REGIONS", "")).split(",") if r.strip()]


def role(function_id: str) -> str:
    """The logical id of a function's role as `chalice package` names it (the function's
    name + "_role", in CloudFormation case: the API handler's is api_handler_role)."""
    return "ApiHandlerRole" if function_id == "APIHandler" else f"{function_id}Role"


def grants(regions: list[str], roles: list[str]) -> dict[str, Any]:
    """An IAM policy for ``roles`` on each region's layers and staging bucket (the policy
    files grant the stack's own region; AWS::Region cannot name the others)."""
    statements: list[dict[str, Any]] = []
    for region in regions:
        layer = f"arn:${{AWS::Partition}}:lambda:{region}:${{AWS::AccountId}}:layer:r-*"
        sid = "".join(part.capitalize() for part in region.split("-"))
        statements += [
            {
                "Sid": f"PublishLayers{sid}",
                "Effect": "Allow",
                "Action": ["lambda:PublishLayerVersion"],
                "Resource": {"Fn::Sub": layer},
            },
            {
                "Sid": f"ManageLayerVersions{sid}",
                "Effect": "Allow",
                "Action": [
                    "lambda:GetLayerVersion",
                    "lambda:DeleteLayerVersion",
                    "lambda:AddLayerVersionPermission",
                    "lambda:GetLayerVersionPolicy",
                ],
                "Resource": {"Fn::Sub": layer + ":*"},
            },
            {
                "Sid": f"StageArtifacts{sid}",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": {
                    "Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{ArtifactBucket}}-{region}"
                    "/artifacts/*"
                },
            },
        ]
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "regional-layers",
            "Roles": [{"Ref": role} for role in roles],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
        },
    }


def main(argv: list[str]) -> int:
    """``python -m deploy.regional STAGE HOME_REGION``: the stage's other regions, one a
    line (what deploy.sh creates a staging stack in)."""
    stage, home = argv
    for region in stage_regions(stage):
        if region != home:
            print(region)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
