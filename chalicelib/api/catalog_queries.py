"""Query strings of the catalog routes (GET /layers, GET /layers/latest)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chalicelib.distribution.principals import REGION_RE
from chalicelib.models import (
    PACKAGE_NAME_RE,
    Architecture,
    LayersQuery,
    parse_r_version,
)

Format = Literal["json", "csv"]
MINOR_RE = re.compile(r"^\d+\.\d+$")
MAX_PACKAGES_QUERY = 2048


class CatalogQuery(LayersQuery):
    format: Format = "json"


class LatestQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # X.Y: its newest patch; X.Y.Z: that release.
    r_version: str = Field(
        max_length=16, json_schema_extra={"pattern": r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"}
    )
    architecture: Architecture = Architecture.X86_64
    # Empty: the stack's own region.
    region: str | None = Field(
        default=None, max_length=32, json_schema_extra={"pattern": REGION_RE.pattern}
    )
    # Comma-separated package names, as asked for when the layer was built (any order).
    # Bounded well below what a URL may hold (API Gateway's request line, any server's).
    packages: str = Field(default="", max_length=MAX_PACKAGES_QUERY)
    format: Format = "json"

    @field_validator("r_version")
    @classmethod
    def _r_version(cls, value: str) -> str:
        if not re.match(r"^\d+\.\d+(\.\d+)?$", value):
            raise ValueError("must be X.Y (its newest patch release) or X.Y.Z, e.g. 4.5")
        parse_r_version(f"{value}.0" if MINOR_RE.match(value) else value)
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not REGION_RE.match(value):
            raise ValueError(f"{value!r} is not an AWS region name (e.g. eu-west-1)")
        return value

    @field_validator("packages")
    @classmethod
    def _packages(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        for name in names:
            if not PACKAGE_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a CRAN package name")
        if len(set(names)) != len(names):
            raise ValueError("a package is listed more than once")
        return ",".join(names)

    def package_list(self) -> list[str]:
        return [n for n in self.packages.split(",") if n]
