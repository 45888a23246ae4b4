"""`chalice package` with a stage that publishes to more regions: the regional grants
attach to every role Chalice makes, pass the template's own checks and cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import checks, package, regional, template

BIN = Path(sys.executable).parent


def test_a_stage_with_regions_packages_clean(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        regional, "stage_regions", lambda stage, config=None: ["eu-west-1", "ap-southeast-2"]
    )
    sam = package.package("dev", tmp_path / "out")
    tpl = json.loads(sam.read_text())
    grants = tpl["Resources"][regional.POLICY]
    roles = [r["Ref"] for r in grants["Properties"]["Roles"]]
    made = {k for k, v in tpl["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
    functions = [v for v in tpl["Resources"].values() if v["Type"] == "AWS::Serverless::Function"]
    # Every function's role, and only those.
    assert set(roles) == {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions}
    assert set(roles) <= made
    assert checks.verify(tpl, template.load_definition()) == []
    result = subprocess.run(
        [str(BIN / "cfn-lint"), "--format", "parseable", str(sam)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
