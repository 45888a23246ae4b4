"""A stage's other regions in the deployment: the staging stack each gets, and the grants
on each region's bucket and layers, named region by region."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy import checks, regional, template
from tests.unit.test_deploy import ASL, FUNCTIONS, TRACED

BIN = Path(sys.executable).parent


def test_a_stage_s_regions_come_from_its_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "environment_variables": {"REGIONS": "us-east-1"},
                "stages": {
                    "prod": {"environment_variables": {"REGIONS": "us-east-1, eu-west-1"}},
                    "dev": {},
                },
            }
        )
    )
    assert regional.stage_regions("prod", config) == ["us-east-1", "eu-west-1"]
    assert regional.stage_regions("dev", config) == ["us-east-1"]
    assert regional.stage_regions("dev") == []  # this project's stages: the stack's region


def test_each_listed_region_is_granted_by_name_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(regional, "stage_regions", lambda stage: ["eu-west-1", "ap-southeast-2"])
    tpl = template.merge_template("dev", ASL, FUNCTIONS, TRACED)
    policy = tpl["Resources"][regional.POLICY]["Properties"]
    assert policy["Roles"][0] == {"Ref": "ApiHandlerRole"}  # as `chalice package` names it
    assert policy["Roles"][1:] == [{"Ref": f"{f}Role"} for f in TRACED[1:]]
    resources = json.dumps([s["Resource"] for s in policy["PolicyDocument"]["Statement"]])
    for region in ("eu-west-1", "ap-southeast-2"):
        assert f"lambda:{region}:${{AWS::AccountId}}:layer:r-*" in resources
        assert f"${{ArtifactBucket}}-{region}/artifacts/*" in resources
    assert "lambda:*" not in resources and "us-west-2" not in resources
    assert checks.policy_findings(tpl) == []

    # A grant in a region the stage does not list is not this stack's.
    stray: dict[str, Any] = regional.grants(["us-west-2"], ["APIHandlerRole"])
    tpl["Resources"]["Stray"] = stray
    found = checks.policy_findings(tpl)
    assert found and all("us-west-2" in f and "must be this stack's" in f for f in found)


def test_no_regions_no_grants() -> None:
    tpl = template.merge_template("dev", ASL, FUNCTIONS, TRACED)
    assert regional.POLICY not in tpl["Resources"]
    assert regional.METADATA_KEY not in tpl.get("Metadata", {})


def test_the_staging_stack_passes_cfn_lint_and_matches_the_artifact_bucket() -> None:
    result = subprocess.run(
        [str(BIN / "cfn-lint"), "--format", "parseable", str(regional.TEMPLATE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    staging = template.load_cfn_yaml(regional.TEMPLATE.read_text())["Resources"]
    home = template.load_resources()["Resources"]["ArtifactBucket"]["Properties"]
    bucket = staging["StagingBucket"]["Properties"]
    # The same protections as the artifact bucket.
    for key in ("BucketEncryption", "PublicAccessBlockConfiguration", "OwnershipControls"):
        assert bucket[key] == home[key]
    assert bucket["BucketName"] == {"Fn::Sub": "${ArtifactBucketName}-${AWS::Region}"}
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-staged-artifacts"]["Prefix"] == "artifacts/"
    policy = staging["StagingBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert policy[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
