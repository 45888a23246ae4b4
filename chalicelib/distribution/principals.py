"""What a request may name for distribution: regions, and the principals a layer is shared
with; and the per-region state of one published layer."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

# An AWS region name (us-east-1, us-gov-west-1, ap-southeast-2, eu-central-2...).
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
ACCOUNT_RE = re.compile(r"^\d{12}$")
ORGANIZATION_RE = re.compile(r"^o-[a-z0-9]{10,32}$")
PUBLIC = "public"
# Regions one build goes to: bounded so that a record with every field at its bound still
# fits one DynamoDB item (tests/unit/test_record_bounds.py).
MAX_REGIONS = 16
MAX_SHARE = 16
# A layer version ARN: arn:aws:lambda:<region>:<account>:layer:<name up to 140>:<n>.
MAX_LAYER_ARN = 210
REGION_SCHEMA: dict[str, Any] = {"pattern": REGION_RE.pattern, "maxLength": 32}
SHARE_SCHEMA: dict[str, Any] = {
    "pattern": rf"{ACCOUNT_RE.pattern}|{ORGANIZATION_RE.pattern}|^{PUBLIC}$",
    "maxLength": 34,
}


def check_regions(values: list[str]) -> list[str]:
    for value in values:
        if not REGION_RE.match(value):
            raise ValueError(f"{value!r} is not an AWS region name (e.g. eu-west-1)")
    if len(set(values)) != len(values):
        raise ValueError("a region is listed more than once")
    return values


def check_share(values: list[str]) -> list[str]:
    for value in values:
        if not (ACCOUNT_RE.match(value) or ORGANIZATION_RE.match(value) or value == PUBLIC):
            raise ValueError(
                f"{value!r} is neither a 12-digit AWS account id, an organization id "
                f"(o- and 10 to 32 lowercase letters or digits) nor {PUBLIC!r}"
            )
    if len(set(values)) != len(values):
        raise ValueError("a principal is listed more than once")
    return values


def permission(principal: str) -> dict[str, str]:
    """AddLayerVersionPermission's arguments for one principal (an organization is ``*``
    limited by OrganizationId; public is ``*`` alone)."""
    if principal == PUBLIC:
        return {"Principal": "*"}
    if ORGANIZATION_RE.match(principal):
        return {"Principal": "*", "OrganizationId": principal}
    return {"Principal": principal}


def statement_id(principal: str) -> str:
    # One statement per principal: adding it again is a conflict we can recognise.
    return "rlayer-" + ("public" if principal == PUBLIC else principal)


class RegionalVersion(BaseModel):
    """One layer's version in one region, and what became of it."""

    arn: str = Field(max_length=MAX_LAYER_ARN)
    # An earlier build's proven version (a runtime layer), not published by this build.
    reused: bool = False
    # Deleted again because the build failed after publishing it.
    retired: bool = False
    # The tombstone: when the expiry task deleted it, and the ARN that replaces it.
    deleted_at: str | None = Field(default=None, max_length=32)
    replaced_by: str | None = Field(default=None, max_length=MAX_LAYER_ARN)

    @property
    def version(self) -> int:
        return int(self.arn.rpartition(":")[2])

    @property
    def name(self) -> str:
        return self.arn.split(":")[6]
