"""Sharing and retention on the whole state machine (moto, two regions), and the rule for
the runtime layer every spec of an R shares."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from pydantic import ValidationError

from chalicelib.aws.session import client
from chalicelib.builders.base import BuildState
from chalicelib.distribution.latest_index import line_key, lookup
from chalicelib.distribution.retention import expire
from chalicelib.errors import NotFoundError, RequestInvalidError, request_invalid
from chalicelib.models import BuildRecord, BuildRequest, BuildSpec
from chalicelib.settings import get_settings
from chalicelib.submit import submit_build
from tests.functional.pipeline_harness import BUCKET, FakeBackend, Pipeline, pipeline_stack
from tests.layerkit import HOST_R_VERSION, Artifacts

HOME, OTHER = "us-east-1", "eu-west-1"
SUCCEEDED = BuildState.SUCCEEDED
ACCOUNT, ORG, LATER = "111122223333", "o-abcdef123456", "444455556666"


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Pipeline]:
    monkeypatch.setenv("REGIONS", f"{HOME},{OTHER}")
    with pipeline_stack(monkeypatch, tmp_path, FakeBackend(Artifacts.host, [SUCCEEDED])) as p:
        client("s3", OTHER).create_bucket(
            Bucket=f"{BUCKET}-{OTHER}", CreateBucketConfiguration={"LocationConstraint": OTHER}
        )
        yield p


def statements(arn: str) -> list[dict[str, Any]]:
    name, _, number = arn.rpartition(":")
    lam = boto3.client("lambda", region_name=arn.split(":")[3])
    policy = lam.get_layer_version_policy(LayerName=name, VersionNumber=int(number))["Policy"]
    found: list[dict[str, Any]] = json.loads(policy)["Statement"]
    return found


def exists(arn: str) -> bool:
    name, _, number = arn.rpartition(":")
    lam = boto3.client("lambda", region_name=arn.split(":")[3])
    try:
        lam.get_layer_version(LayerName=name, VersionNumber=int(number))
    except lam.exceptions.ResourceNotFoundException:
        return False
    return True


def arns(record: BuildRecord, kind: str) -> dict[str, str]:
    layer = next(la for la in record.layers if la.kind == kind)
    return {region: v.arn for region, v in layer.regions.items()}


def new_recipe(spec: BuildSpec) -> Artifacts:
    """The same R built from a changed recipe: another runtime layer version."""
    built = Artifacts.host(spec)
    runtime = built.layer("runtime")
    return built.with_layer("runtime", overrides={**runtime.overrides, "recipe_hash": "recipe2"})


def test_layers_are_shared_per_version_and_region_and_the_runtime_for_every_spec(
    pipeline: Pipeline,
) -> None:
    first, execution = pipeline.run(["jsonlite"], share=[ACCOUNT, ORG])
    assert execution["status"] == "SUCCEEDED", execution
    assert first.share == [ACCOUNT, ORG]
    for layer in first.layers:
        assert layer.shared_with == [ORG, ACCOUNT]
        for version in layer.regions.values():
            grants = {s["Sid"]: s for s in statements(version.arn)}
            assert set(grants) == {f"rlayer-{ACCOUNT}", f"rlayer-{ORG}"}
            assert grants[f"rlayer-{ACCOUNT}"]["Action"] == "lambda:GetLayerVersion"
            assert ACCOUNT in json.dumps(grants[f"rlayer-{ACCOUNT}"]["Principal"])
            # An organization is everyone in it: principal *, limited by its id.
            assert grants[f"rlayer-{ORG}"]["Principal"] in ("*", {"AWS": "*"})
            assert grants[f"rlayer-{ORG}"]["OrganizationId"] == ORG

    # Another spec of the same R reuses the runtime version: sharing it for this request
    # shares it for the first spec too, and both records' runtime shows everyone.
    second, execution = pipeline.run([], share=[LATER])
    assert execution["status"] == "SUCCEEDED"
    (runtime,) = second.layers
    assert runtime.reused and runtime.arn == first.layers[0].arn
    assert runtime.shared_with == [ORG, ACCOUNT, LATER]
    for arn in arns(first, "runtime").values():
        assert {s["Sid"] for s in statements(arn)} == {
            f"rlayer-{ACCOUNT}",
            f"rlayer-{ORG}",
            f"rlayer-{LATER}",
        }
    # The first spec's packages layer is not part of that.
    for arn in arns(first, "packages").values():
        assert {s["Sid"] for s in statements(arn)} == {f"rlayer-{ACCOUNT}", f"rlayer-{ORG}"}


def test_a_proven_build_is_shared_in_place_without_a_rebuild(pipeline: Pipeline) -> None:
    first, _ = pipeline.run(["jsonlite"], share=[ACCOUNT])
    executions = pipeline.sfn.list_executions(stateMachineArn=pipeline.state_machine_arn)
    request = BuildRequest(r_version=HOST_R_VERSION, packages=["jsonlite"], share=[LATER])
    record, created = submit_build(request, store=pipeline.store, settings=get_settings())
    assert not created and record.build_id == first.build_id
    assert record.share == [ACCOUNT, LATER]
    for layer in record.layers:
        assert layer.shared_with == [ACCOUNT, LATER]
        for version in layer.regions.values():
            assert {s["Sid"] for s in statements(version.arn)} == {
                f"rlayer-{ACCOUNT}",
                f"rlayer-{LATER}",
            }
    after = pipeline.sfn.list_executions(stateMachineArn=pipeline.state_machine_arn)
    assert len(after["executions"]) == len(executions["executions"])  # nothing rebuilt
    # Asking again changes nothing.
    again, created = submit_build(request, store=pipeline.store, settings=get_settings())
    assert not created and again.share == [ACCOUNT, LATER]


def test_public_sharing_is_the_stage_s_choice(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = BuildRequest(r_version=HOST_R_VERSION, share=["public"])
    with pytest.raises(RequestInvalidError) as caught:
        submit_build(request, store=pipeline.store, settings=get_settings())
    assert caught.value.field == "share"
    assert "publicly" in caught.value.message

    with pytest.raises(ValidationError) as bad:
        BuildRequest.model_validate({"r_version": HOST_R_VERSION, "share": ["12345"]})
    error = request_invalid(bad.value)
    assert error.field == "share"
    assert "12-digit AWS account id" in error.message

    monkeypatch.setenv("ALLOW_PUBLIC_SHARE", "true")
    from chalicelib.settings import reset_settings

    reset_settings()
    record, execution = pipeline.run([], share=["public"])
    assert execution["status"] == "SUCCEEDED"
    for arn in arns(record, "runtime").values():
        (grant,) = statements(arn)
        assert grant["Sid"] == "rlayer-public"
        assert grant["Principal"] in ("*", {"AWS": "*"})
        assert "OrganizationId" not in grant


def refuse_deletes(region: str, times: int) -> list[int]:
    """DeleteLayerVersion in ``region`` fails ``times`` times (throttled, as AWS would)."""
    hits: list[int] = []

    def hook(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if len(hits) >= times:
            return None
        hits.append(1)
        parsed = {
            "Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded (test)"},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        }
        return AWSResponse(params.get("url", ""), 429, {}, None), parsed

    client("lambda", region).meta.events.register("before-call.lambda.DeleteLayerVersion", hook)
    return hits


def test_superseded_versions_expire_with_tombstones_and_shared_runtimes_stay_while_used(
    pipeline: Pipeline,
) -> None:
    a, _ = pipeline.run(["jsonlite"])
    b, _ = pipeline.run([])  # another spec on A's runtime version
    assert arns(b, "runtime") == arns(a, "runtime")
    # A changed recipe, forced: A2 replaces A, with a new runtime version.
    pipeline.use(FakeBackend(new_recipe, [SUCCEEDED]))
    a2, execution = pipeline.run(["jsonlite"], force=True)
    assert execution["status"] == "SUCCEEDED"
    a = pipeline.store.get_build(a.build_id)
    assert a.superseded_by == a2.build_id and a.expires_at is not None
    expires = datetime.strptime(a.expires_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)
    assert pipeline.store.get_build(b.build_id).superseded_by is None

    # The resolver answers the new build: A's entry was replaced when A2 was proven.
    def latest_arns(region: str) -> list[str]:
        found = lookup(
            pipeline.store,
            r_version=HOST_R_VERSION.rsplit(".", 1)[0],
            architecture=a.spec.architecture,
            region=region,
            packages=["jsonlite"],
        )
        assert found.build_id == a2.build_id
        return found.arns

    assert latest_arns(OTHER) == [arns(a2, "runtime")[OTHER], arns(a2, "packages")[OTHER]]

    settings = get_settings()
    # Before the expiry date nothing goes.
    early = expire(pipeline.store, settings, now=datetime.now(UTC) + timedelta(days=30))
    assert early.deleted == [] and early.failed == []

    # Past it, with eu-west-1 refusing the first deletion: the rest goes, that one stays
    # for the next run, and the tombstone is there from the start.
    later = datetime.now(UTC) + timedelta(days=91)
    refusals = refuse_deletes(OTHER, times=1)
    first_run = expire(pipeline.store, settings, now=later)
    assert refusals == [1]
    assert first_run.failed == [arns(a, "packages")[OTHER]]
    assert first_run.deleted == [arns(a, "packages")[HOME]]
    # A's runtime is B's too, and B is current: kept in every region.
    assert sorted(first_run.kept) == sorted(arns(a, "runtime").values())
    half = pipeline.store.get_build(a.build_id)
    assert half.deleted_at is None
    packages = next(la for la in half.layers if la.kind == "packages")
    assert packages.regions[HOME].deleted_at is not None
    assert packages.regions[HOME].replaced_by == arns(a2, "packages")[HOME]
    assert packages.regions[OTHER].deleted_at is None

    second_run = expire(pipeline.store, settings, now=later)
    assert second_run.deleted == [arns(a, "packages")[OTHER]] and second_run.failed == []
    done = pipeline.store.get_build(a.build_id)
    assert done.deleted_at is not None
    packages = next(la for la in done.layers if la.kind == "packages")
    assert packages.regions[OTHER].replaced_by == arns(a2, "packages")[OTHER]
    assert not any(exists(arn) for arn in arns(a, "packages").values())
    assert all(exists(arn) for arn in arns(a, "runtime").values())

    # A lost resolver entry is written again by the expiry task.
    pipeline.store.delete(line_key(a2.spec.architecture, a2.spec.r_version, ["jsonlite"]))
    with pytest.raises(NotFoundError):
        latest_arns(HOME)
    expire(pipeline.store, settings, now=later)
    assert latest_arns(HOME) == [arns(a2, "runtime")[HOME], arns(a2, "packages")[HOME]]

    # B's spec moves to the new recipe too: once B expires, nobody current uses the first
    # runtime version, and it goes, replaced by A2's runtime (which B2 reuses).
    b2, _ = pipeline.run([], force=True)
    assert arns(b2, "runtime") == arns(a2, "runtime")
    third_run = expire(pipeline.store, settings, now=later + timedelta(days=91))
    assert sorted(third_run.deleted) == sorted(arns(b, "runtime").values())
    b = pipeline.store.get_build(b.build_id)
    assert b.deleted_at is not None
    assert {r: v.replaced_by for r, v in b.layers[0].regions.items()} == arns(a2, "runtime")
    # Nothing current went.
    for record in (a2, b2):
        for layer in record.layers:
            assert all(exists(v.arn) for v in layer.regions.values())
