"""No build record can exceed DynamoDB's 400 KB item limit: every field has a bound."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from chalicelib.aws.items import BUILD, to_item
from chalicelib.distribution.principals import (
    MAX_LAYER_ARN,
    MAX_REGIONS,
    MAX_SHARE,
    RegionalVersion,
)
from chalicelib.models import (
    MAX_CLOSURE,
    MAX_ERROR_TEXT,
    MAX_LAYERS,
    MAX_PACKAGES,
    MAX_URL,
    MAX_WATCHERS,
    BuildRecord,
    BuildSpec,
    CanaryResult,
    ErrorInfo,
    LayerRef,
    NotifyTarget,
)

DYNAMODB_ITEM_LIMIT = 400 * 1024


def _largest_record() -> BuildRecord:
    packages = [f"p{i:03d}" + "x" * 60 + "==" + "1." * 15 + "1" for i in range(MAX_PACKAGES)]
    spec = BuildSpec(r_version="4.4.1", packages=packages)  # type: ignore[arg-type]
    target = NotifyTarget(
        response_url="https://hooks.slack.com/" + "u" * (MAX_URL - 24),
        channel_id="C" * 128,
        team_id="T" * 128,
        user_id="U" * 128,
        requested_at="2026-12-02T00:00:00.000000Z" + "z" * 100,
    )
    layer = LayerRef(
        kind="packages",
        name="n" * 140,
        arn="arn:" + "a" * 2000,
        version=10**9,
        sha256="0" * 64,
        zipped_bytes=10**9,
        unzipped_bytes=10**9,
        recipe_hash="r" * 64,
        regions={
            f"xx-region-{i}": RegionalVersion(
                arn="a" * MAX_LAYER_ARN,
                reused=True,
                retired=True,
                deleted_at="2026-12-02T00:00:00.000000Z",
                replaced_by="a" * MAX_LAYER_ARN,
            )
            for i in range(MAX_REGIONS)
        },
        shared_with=["o-" + "o" * 32] * (2 * MAX_SHARE),
    )
    return BuildRecord(
        build_id="b" * 128,
        spec_hash=spec.spec_hash,
        spec=spec,
        layer_name="l" * 140,
        description="d" * 256,
        execution_arn="e" * MAX_URL,
        build_ref="r" * MAX_URL,
        log_url="u" * MAX_URL,
        artifact_location="a" * MAX_URL,
        layers=[layer] * MAX_LAYERS,
        canary=CanaryResult(
            r_version="4.4.1",
            packages={f"p{i:03d}" + "x" * 60: "1." * 15 + "1" for i in range(MAX_CLOSURE)},
            checked=[f"p{i:03d}" + "x" * 60 for i in range(MAX_PACKAGES)],
            timings={f"t{i}" + "x" * 100: 1.0 for i in range(16)},
        ),
        error=ErrorInfo(step="s" * 500, error_type="E" * 500, message="m" * 10**6),
        notify=target,
        watchers=[target] * MAX_WATCHERS,
        subscription_id="s" * 128,
        regions=["xx-region-1"] * MAX_REGIONS,
        share=["o-" + "o" * 32] * (2 * MAX_SHARE),
        superseded_by="b" * 128,
        superseded_at="t" * 128,
        expires_at="t" * 128,
        deleted_at="t" * 128,
    )


def test_the_largest_possible_record_fits_in_one_dynamodb_item() -> None:
    record = _largest_record()
    item = to_item(BUILD.encode(record.model_dump(mode="json"), created_at="x", ident="y"))
    size = len(json.dumps(item))  # attribute names and values; the real encoding is smaller
    assert size < DYNAMODB_ITEM_LIMIT, size


def test_error_texts_are_cut_not_refused() -> None:
    error = ErrorInfo(step="CheckBuild", error_type="BuildFailedError", message="x" * 100_000)
    assert len(error.message) == MAX_ERROR_TEXT
    assert error.message.endswith("characters cut]")
    assert ErrorInfo(step="a", error_type="b", message="short").message == "short"


def test_lists_past_their_bound_are_refused() -> None:
    record = _largest_record()
    with pytest.raises(ValidationError):
        BuildRecord.model_validate(
            {**record.model_dump(), "watchers": [record.notify] * (MAX_WATCHERS + 1)}
        )
