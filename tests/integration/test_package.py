"""`make package` for real: chalice package + merge, cfn-lint, the artifacts, deploy.sh.

Runs ``python -m deploy.package`` as CI does: AWS_DEFAULT_REGION set and no credentials at
all. ``deploy.sh`` runs against a fake ``aws`` executable that records its calls, so the
order and arguments of the real deployment are checked without an account.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import checks, template

pytestmark = pytest.mark.integration

REPO = template.REPO
BIN = Path(sys.executable).parent


def offline_env(**extra: str) -> dict[str, str]:
    """The environment minus every way to find AWS credentials."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("POWERTOOLS_TRACE_DISABLED",)
    }
    env.update(
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )
    return env


def package(stage: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.package", "--stage", stage, "--out", str(out)],
        cwd=REPO,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module", params=["dev", "prod"])
def packaged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"out-{request.param}")
    done = package(request.param, out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def sam(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "sam.json").read_text())
    return data


def stage_of(out: Path) -> str:
    return "prod" if "out-prod" in out.name else "dev"


def test_cfn_lint_finds_nothing(packaged: Path) -> None:
    done = subprocess.run(
        [str(BIN / "cfn-lint"), "--format", "parseable", str(packaged / "sam.json")],
        capture_output=True,
        text=True,
    )
    # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational.
    assert done.returncode & (2 | 4) == 0, done.stdout + done.stderr


def test_the_packaged_template_passes_its_own_checks(packaged: Path) -> None:
    tpl = sam(packaged)
    definition = template.load_definition()
    assert checks.verify(tpl, definition) == []
    subs = tpl["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert set(subs) == template.placeholders(definition)
    for name, value in subs.items():
        if name.endswith(template.FUNCTION_SUFFIX):
            target = value["Fn::GetAtt"][0]
            assert tpl["Resources"][target]["Type"] == template.SAM_FUNCTION


def test_every_chalice_function_gets_the_stage_policy_settings_and_tracing(
    packaged: Path,
) -> None:
    tpl = sam(packaged)
    policy = json.loads((REPO / ".chalice" / f"policy-{stage_of(packaged)}.json").read_text())
    env = tpl["Globals"]["Function"]["Environment"]["Variables"]
    functions = {k: v for k, v in tpl["Resources"].items() if v["Type"] == template.SAM_FUNCTION}
    assert len(functions) >= 10
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Tracing"] == "Active", name
        role = tpl["Resources"][props["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert [p["PolicyDocument"] for p in role["Policies"]] == [policy], name
        # Chalice's own variables stay; the stack's come from Globals (SAM merges them).
        assert props["Environment"]["Variables"]["STAGE"] == stage_of(packaged)
        assert not set(props["Environment"]["Variables"]) & set(env), name
    assert tpl["Globals"]["Function"]["LoggingConfig"]["LogGroup"] == {"Ref": "FunctionsLogGroup"}


def test_outputs_give_what_a_user_needs(packaged: Path) -> None:
    outputs = sam(packaged)["Outputs"]
    assert {"EndpointURL", "TableName", "ArtifactBucketName", "StateMachineArn"} <= set(outputs)
    assert outputs["StateMachineArn"]["Value"] == {"Ref": "PipelineStateMachine"}


def test_prod_retains_data_and_dev_does_not(packaged: Path) -> None:
    table = sam(packaged)["Resources"]["BuildsTable"]
    expected = "Retain" if stage_of(packaged) == "prod" else "Delete"
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == expected


def test_the_lambda_package_holds_the_app_and_the_canary_only(packaged: Path) -> None:
    with zipfile.ZipFile(packaged / "deployment.zip") as zf:
        names = set(zf.namelist())
        assert {"app.py", "chalicelib/__init__.py", "chalicelib/pipeline/canary.py"} <= names
        canary = sorted(
            p.relative_to(REPO).as_posix()
            for p in (REPO / "runtime" / "canary").rglob("*")
            if p.is_file()
        )
        assert canary and set(canary) <= names
        for name in canary:
            assert zf.read(name) == (REPO / name).read_bytes()
    assert not any(n.startswith(("deploy/", "tests/", "buildspec/", ".chalice/")) for n in names)
    # No developer tool (the CLI, its client, the local stack, the emulator, the sandbox, the
    # local build backend: the rlayer package) and no botocore (Lambda's runtime has it).
    assert not any(n.startswith(("rlayer/", "botocore/", "boto3/", "moto/")) for n in names)
    assert "chalicelib/lambda_os.json" in names  # the ABI gate's table
    assert "elftools/__init__.py" in names  # the gate's ELF reader


def test_build_source_has_what_the_buildspec_runs(packaged: Path) -> None:
    with zipfile.ZipFile(packaged / "build-source.zip") as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    spec = yaml.safe_load((REPO / "buildspec" / "buildspec.yml").read_text())
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    scripts = {
        w for c in commands for w in c.replace("'", " ").split() if w.startswith("buildspec/")
    }
    assert scripts and scripts <= names, scripts - names
    assert "buildspec/buildspec.yml" in names
    assert "runtime/bootstrap/bootstrap" in names
    assert modes["runtime/bootstrap/bootstrap"] & stat.S_IXUSR
    project = sam(packaged)["Resources"]["BuildProjectArm64"]["Properties"]
    assert project["Source"]["BuildSpec"] in names
    assert project["Environment"]["Type"] == "ARM_CONTAINER"


def test_build_source_zip_is_reproducible(tmp_path: Path) -> None:
    from deploy.package import build_source_zip

    a = build_source_zip(tmp_path / "a.zip").read_bytes()
    b = build_source_zip(tmp_path / "b.zip").read_bytes()
    assert a == b


def test_a_broken_asl_mapping_stops_packaging(tmp_path: Path) -> None:
    # The guard runs before chalice: a placeholder nothing fills is a clear error, exit 1.
    asl = json.loads(template.ASL_FILE.read_text())
    asl["Comment"] = "${NoSuchFunctionArn}"
    bad = tmp_path / "asl.json"
    bad.write_text(json.dumps(asl))
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from deploy import package, template
        template.ASL_FILE = Path({str(bad)!r})
        sys.exit(package.main(["--stage", "dev", "--out", {str(tmp_path / "out")!r}]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=offline_env(), capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "${NoSuchFunctionArn} is no task of chalicelib.pipeline.TASKS" in done.stderr
    assert not (tmp_path / "out" / "sam.json").exists()


# -- deploy.sh against a fake aws ----------------------------------------------------------
FAKE_AWS = """#!{python}
import json, os, shutil, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["configure", "get"]:
    sys.exit(1)
if args[:2] == ["sts", "get-caller-identity"]:
    print("123456789012")
elif args[:2] == ["ec2", "describe-vpcs"]:
    print("vpc-0123456789abcdef0")
elif args[:2] == ["s3api", "head-bucket"]:
    sys.exit(254)  # no such bucket yet
elif args[:2] == ["cloudformation", "package"]:
    src = args[args.index("--template-file") + 1]
    shutil.copy(src, args[args.index("--output-template-file") + 1])
"""


def run_deploy(out: Path, tmp_path: Path, **env: str) -> tuple[int, list[list[str]], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "aws"
    fake.write_text(FAKE_AWS.format(python=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "aws.log"
    log.write_text("")
    done = subprocess.run(
        ["sh", str(REPO / "deploy" / "deploy.sh")],
        cwd=REPO,
        env=offline_env(
            PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            FAKE_AWS_LOG=str(log),
            OUT=str(out),
            **env,
        ),
        capture_output=True,
        text=True,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return done.returncode, calls, done.stdout + done.stderr


def test_deploy_uploads_the_build_source_and_deploys_the_packaged_stack(
    packaged: Path, tmp_path: Path
) -> None:
    stage = stage_of(packaged)
    code, calls, output = run_deploy(packaged, tmp_path, STAGE=stage, PARAMETERS="MaxX=1")
    assert code == 0, output
    verbs = [c[:2] for c in calls]
    assert verbs == [
        ["sts", "get-caller-identity"],
        ["s3api", "head-bucket"],
        ["s3api", "create-bucket"],
        ["s3api", "put-public-access-block"],
        ["s3api", "put-bucket-encryption"],
        ["ec2", "describe-vpcs"],
        ["s3", "cp"],
        ["cloudformation", "package"],
        ["cloudformation", "deploy"],
        ["cloudformation", "describe-stacks"],
    ]
    bucket = "rlayer-deploy-123456789012-eu-west-1"
    create = calls[2]
    assert create[create.index("--bucket") + 1] == bucket
    assert "LocationConstraint=eu-west-1" in create  # outside us-east-1 it is required
    digest = hashlib.sha256((packaged / "build-source.zip").read_bytes()).hexdigest()[:16]
    key = f"rlayer-{stage}/build-source-{digest}.zip"
    assert calls[6][-1] == f"s3://{bucket}/{key}"
    deploy = calls[8]
    assert deploy[deploy.index("--stack-name") + 1] == f"rlayer-{stage}"
    assert {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"} <= set(deploy)
    assert {f"BuildSourceBucket={bucket}", f"BuildSourceKey={key}", "MaxX=1"} <= set(deploy)
    # The EC2 builds' security group goes into the default VPC unless one is named.
    assert "Ec2VpcId=vpc-0123456789abcdef0" in deploy
    named = "MaxX=1 Ec2VpcId=vpc-0aaa"
    code, calls, output = run_deploy(packaged, tmp_path, STAGE=stage, PARAMETERS=named)
    assert code == 0, output
    assert ["ec2", "describe-vpcs"] not in [c[:2] for c in calls]
    assert "Ec2VpcId=vpc-0aaa" in calls[-2]
    template_file = deploy[deploy.index("--template-file") + 1]
    assert json.loads(Path(template_file).read_text()) == sam(packaged)


def test_deploy_refuses_a_stack_name_the_roles_cannot_scope(packaged: Path, tmp_path: Path) -> None:
    code, calls, output = run_deploy(packaged, tmp_path, STACK_NAME="Rlayer_Prod")
    assert code != 0 and "STACK_NAME" in output
    assert calls == []


def test_deploy_wants_a_package_first(tmp_path: Path) -> None:
    code, calls, output = run_deploy(tmp_path / "nothing", tmp_path)
    assert code != 0 and "make package" in output
    assert calls == []
