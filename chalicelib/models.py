"""Pydantic contracts for every boundary: API bodies, records, manifests.

Validation here is the security boundary too: a package name or R version that passes
these models is safe to hand to a build script as an environment variable.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from chalicelib.distribution.principals import (
    MAX_REGIONS,
    MAX_SHARE,
    REGION_SCHEMA,
    SHARE_SCHEMA,
    RegionalVersion,
    check_regions,
    check_share,
)

R_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
MIN_R_VERSION = (4, 0, 0)
# CRAN: letters, digits and dots, starts with a letter, no trailing dot, >= 2 characters.
PACKAGE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$")
# CRAN versions are numbers separated by '.' or '-' (e.g. 1.8.7, 1.14-2).
PACKAGE_VERSION_RE = re.compile(r"^\d+(?:[.-]\d+)+$")
# What Lambda accepts as a layer name (the ARN form is not accepted from users), less the
# two characters of the "r-" prefix every published layer gets.
LAYER_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,138}$")
MAX_PACKAGES = 200
# Packages in a layer: those asked for and their dependencies.
MAX_CLOSURE = 4 * MAX_PACKAGES
LAMBDA_DESCRIPTION_MAX = 256
# Field limits. CRAN's longest package names are under 40 characters and its versions
# under 20; an R version is X.Y.Z. With at most MAX_PACKAGES entries of at most
# MAX_PACKAGE_ENTRY characters, a request (and the record holding it) stays far below
# DynamoDB's 400 KB item limit: 200 x 98 characters is 20 KB.
MAX_R_VERSION = 16
MAX_PACKAGE_NAME = 64
MAX_PACKAGE_VERSION = 32
MAX_PACKAGE_ENTRY = MAX_PACKAGE_NAME + 2 + MAX_PACKAGE_VERSION
# What the pipeline writes is bounded too, so that no record can pass DynamoDB's 400 KB:
# error texts (a failed step's reason carries the build log's tail) are cut, not refused;
# ids, ARNs and URLs have room for any AWS or Slack value.
MAX_ERROR_TEXT = 8_000
MAX_NAME = 128
MAX_URL = 2_048
MAX_LAYERS = 8
MAX_TIMINGS = 16
# Later requesters remembered per build (each a NotifyTarget of at most ~2.6 KB).
MAX_WATCHERS = 50
# Page tokens are base64 of a table key: far shorter than this.
MAX_TOKEN = 2_048
# The rules above as the OpenAPI document shows them; the validators below enforce them
# (with messages naming the rule), so these only describe.
R_VERSION_SCHEMA: JsonDict = {
    "pattern": r"^([4-9]|[1-9][0-9]+)\.[0-9]+\.[0-9]+$",
    "maxLength": MAX_R_VERSION,
}
PACKAGE_ENTRY_SCHEMA: JsonDict = {
    "pattern": r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9](==[0-9]+([.-][0-9]+)+)?$",
    "maxLength": MAX_PACKAGE_ENTRY,
}
PackageEntry = Annotated[str, Field(json_schema_extra=PACKAGE_ENTRY_SCHEMA)]
PackageName = Annotated[str, StringConstraints(max_length=MAX_PACKAGE_NAME)]
PackageVersion = Annotated[str, StringConstraints(max_length=MAX_PACKAGE_VERSION)]


def truncated(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    if len(text) <= limit:
        return text
    marker = f" ... [{len(text) - limit + 40:,} characters cut]"
    return text[: limit - len(marker)] + marker


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Which entry point asked for a build.
Source = Literal["api", "slack", "schedule", "cli"]


class Architecture(StrEnum):
    X86_64 = "x86_64"
    ARM64 = "arm64"


class BuildStatus(StrEnum):
    QUEUED = "QUEUED"
    BUILDING = "BUILDING"
    VALIDATING = "VALIDATING"
    PUBLISHING = "PUBLISHING"
    TESTING = "TESTING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (BuildStatus.SUCCEEDED, BuildStatus.FAILED)

    def predecessors(self) -> tuple[BuildStatus, ...]:
        """Statuses a record may be in for a move to this one (forward only)."""
        order = list(BuildStatus)[:-1]  # QUEUED .. SUCCEEDED; FAILED is off to the side
        if self is BuildStatus.FAILED:
            return tuple(s for s in order if not s.is_final)
        return tuple(order[: order.index(self)])


def parse_r_version(value: str) -> tuple[int, int, int]:
    if not isinstance(value, str) or len(value) > MAX_R_VERSION or not R_VERSION_RE.match(value):
        raise ValueError("must be an R version of the form X.Y.Z, e.g. 4.4.1")
    major, minor, patch = (int(p) for p in value.split("."))
    if (major, minor, patch) < MIN_R_VERSION:
        raise ValueError("must be 4.0.0 or newer")
    return major, minor, patch


class PackageSpec(BaseModel):
    """One requested CRAN package, optionally pinned (``name==1.2.3``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> PackageSpec:
        if not isinstance(text, str):
            raise ValueError("each package must be a string")
        if len(text) > MAX_PACKAGE_ENTRY:
            raise ValueError(
                f"a package entry is at most {MAX_PACKAGE_ENTRY} characters "
                f"(name {MAX_PACKAGE_NAME}, version {MAX_PACKAGE_VERSION}); got {len(text)}"
            )
        name, sep, version = text.partition("==")
        if len(name) > MAX_PACKAGE_NAME:
            raise ValueError(f"a package name is at most {MAX_PACKAGE_NAME} characters")
        if len(version) > MAX_PACKAGE_VERSION:
            raise ValueError(f"a pinned version is at most {MAX_PACKAGE_VERSION} characters")
        if not PACKAGE_NAME_RE.match(name):
            raise ValueError(
                f"{text!r} is not a CRAN package name (letters, digits and dots, "
                "starting with a letter, optionally pinned as name==1.2.3)"
            )
        if sep and not PACKAGE_VERSION_RE.match(version):
            raise ValueError(f"{text!r}: the pinned version must look like 1.2.3 or 1.2-3")
        return cls(name=name, version=version or None)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name


def parse_packages(values: list[str]) -> tuple[PackageSpec, ...]:
    if len(values) > MAX_PACKAGES:
        raise ValueError(f"at most {MAX_PACKAGES} packages per build, got {len(values)}")
    specs = [PackageSpec.parse(v) for v in values]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ValueError(f"package {spec.name!r} is listed more than once")
        seen.add(spec.name)
    return tuple(sorted(specs, key=lambda s: s.name))


class BuildSpec(BaseModel):
    """The normalised what-to-build: identical specs have identical hashes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    r_version: str
    architecture: Architecture = Architecture.X86_64
    packages: tuple[PackageSpec, ...] = ()

    @field_validator("r_version")
    @classmethod
    def _r_version(cls, value: str) -> str:
        parse_r_version(value)
        return value

    @field_validator("packages", mode="before")
    @classmethod
    def _packages(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return parse_packages(list(value))
        if isinstance(value, list | tuple):
            return tuple(sorted(value, key=lambda s: s["name"] if isinstance(s, dict) else s.name))
        return value

    @property
    def spec_hash(self) -> str:
        canonical = json.dumps(
            {
                "r_version": self.r_version,
                "architecture": self.architecture.value,
                "packages": [str(p) for p in self.packages],
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def runtime_layer_name(self) -> str:
        # Lambda layer names allow no dots: r-4_4_1-x86_64.
        return f"r-{self.r_version.replace('.', '_')}-{self.architecture.value}"

    @property
    def packages_layer_name(self) -> str:
        return f"{self.runtime_layer_name}-pkgs-{self.spec_hash}"

    def package_names(self) -> list[str]:
        return [p.name for p in self.packages]


class BuildRequest(BaseModel):
    """Body of ``POST /builds`` (and what Slack and the scheduler turn into one)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    r_version: str = Field(max_length=MAX_R_VERSION, json_schema_extra=R_VERSION_SCHEMA)
    packages: list[PackageEntry] = Field(
        default_factory=list, max_length=MAX_PACKAGES, json_schema_extra={"uniqueItems": True}
    )
    # Lax for the enum only, so Python callers (Slack, scheduler) may pass the plain string.
    architecture: Architecture = Field(default=Architecture.X86_64, strict=False)
    layer_name: str | None = Field(
        default=None, max_length=138, json_schema_extra={"pattern": LAYER_NAME_RE.pattern}
    )
    description: str | None = Field(default=None, max_length=LAMBDA_DESCRIPTION_MAX)
    force: bool = False
    # Where it is built (codebuild, ec2, ...); the stage's default when absent.
    backend: str | None = Field(default=None, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")
    # A subset of the stage's regions (empty: all of them); the stack's own is always one.
    regions: list[Annotated[str, Field(json_schema_extra=REGION_SCHEMA)]] = Field(
        default_factory=list, max_length=MAX_REGIONS
    )
    # Account ids, organization ids (o-...) or "public", besides the stage's own.
    share: list[Annotated[str, Field(json_schema_extra=SHARE_SCHEMA)]] = Field(
        default_factory=list, max_length=MAX_SHARE
    )

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        return check_regions(value)

    @field_validator("share")
    @classmethod
    def _share(cls, value: list[str]) -> list[str]:
        return check_share(value)

    @field_validator("r_version")
    @classmethod
    def _r_version(cls, value: str) -> str:
        parse_r_version(value)
        return value

    @field_validator("packages")
    @classmethod
    def _packages(cls, value: list[str]) -> list[str]:
        parse_packages(value)
        return value

    @field_validator("layer_name")
    @classmethod
    def _layer_name(cls, value: str | None) -> str | None:
        if value is not None and not LAYER_NAME_RE.match(value):
            raise ValueError(
                "must be 1-138 characters of letters, digits, '-' and '_' (a Lambda layer name)"
            )
        return value

    def spec(self) -> BuildSpec:
        return BuildSpec(
            r_version=self.r_version,
            architecture=self.architecture,
            packages=parse_packages(self.packages),
        )


class NotifyTarget(BaseModel):
    """Where to report a build's end (Slack response_url and/or channel)."""

    model_config = ConfigDict(extra="forbid")

    response_url: str | None = Field(default=None, max_length=MAX_URL)
    channel_id: str | None = Field(default=None, max_length=MAX_NAME)
    team_id: str | None = Field(default=None, max_length=MAX_NAME)
    user_id: str | None = Field(default=None, max_length=MAX_NAME)
    # When this requester asked (watchers of a de-duplicated build); the response_url's
    # 30 minutes run from here. None: the build's own created_at.
    requested_at: str | None = Field(default=None, max_length=MAX_NAME)

    def same_requester(self, other: NotifyTarget) -> bool:
        """The same person in the same place: a repeated command is told once."""
        if self.channel_id or other.channel_id:
            return (self.team_id, self.channel_id, self.user_id) == (
                other.team_id,
                other.channel_id,
                other.user_id,
            )
        return self.response_url == other.response_url


class LayerRef(BaseModel):
    kind: Literal["runtime", "packages"]
    name: str
    arn: str
    version: int
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    reused: bool = False
    # The runtime recipe it was built from (runtime layers; decides reuse).
    recipe_hash: str | None = None
    # Deleted again because the build failed after publishing it (never a reused layer).
    retired: bool = False
    # The version in every region of the build (the stack's own included; ``arn`` is that).
    regions: dict[str, RegionalVersion] = Field(default_factory=dict, max_length=MAX_REGIONS)
    # Who may use it besides this account (account ids, o-..., public), in every region.
    shared_with: list[str] = Field(default_factory=list, max_length=2 * MAX_SHARE)


class CanaryResult(BaseModel):
    r_version: str = Field(max_length=MAX_NAME)
    # Every package the canary loaded: those asked for and the rest of their closure.
    packages: dict[PackageName, PackageVersion] = Field(
        default_factory=dict, max_length=MAX_CLOSURE
    )
    # The asked-for packages whose compiled code a check ran (the others loaded only).
    checked: list[PackageName] = Field(default_factory=list, max_length=MAX_PACKAGES)
    init_ms: float | None = None
    duration_ms: float | None = None
    max_memory_mb: int | None = None
    timings: dict[Annotated[str, StringConstraints(max_length=MAX_NAME)], float] = Field(
        default_factory=dict, max_length=MAX_TIMINGS
    )


class ErrorInfo(BaseModel):
    step: str = Field(max_length=MAX_NAME)
    error_type: str = Field(max_length=MAX_NAME)
    message: str

    @field_validator("step", "error_type", "message", mode="before")
    @classmethod
    def _cut(cls, value: object, info: Any) -> object:
        # Written by the pipeline from an exception's text: cut, never refused.
        limit = MAX_ERROR_TEXT if info.field_name == "message" else MAX_NAME
        return truncated(value, limit) if isinstance(value, str) else value


class BuildRecord(BaseModel):
    """A build as stored under ``BUILD#<id>`` and returned by ``GET /builds/{id}``."""

    build_id: str
    spec_hash: str
    spec: BuildSpec
    layer_name: str | None = Field(default=None, max_length=140)
    description: str | None = Field(default=None, max_length=LAMBDA_DESCRIPTION_MAX)
    source: Source = "api"
    status: BuildStatus = BuildStatus.QUEUED
    created_at: str = Field(default_factory=utcnow)
    updated_at: str = Field(default_factory=utcnow)
    steps: dict[str, str] = Field(default_factory=dict)
    execution_arn: str | None = Field(default=None, max_length=MAX_URL)
    build_ref: str | None = Field(default=None, max_length=MAX_URL)
    # The build backend it runs on (None: the stage's default, for records before the field).
    backend: str | None = Field(default=None, max_length=MAX_NAME)
    log_url: str | None = Field(default=None, max_length=MAX_URL)
    artifact_location: str | None = Field(default=None, max_length=MAX_URL)
    layers: list[LayerRef] = Field(default_factory=list, max_length=MAX_LAYERS)
    canary: CanaryResult | None = None
    error: ErrorInfo | None = None
    notify: NotifyTarget | None = None
    # Later requesters of the same spec, answered with this build: told when it ends too.
    watchers: list[NotifyTarget] = Field(default_factory=list, max_length=MAX_WATCHERS)
    subscription_id: str | None = Field(default=None, max_length=MAX_NAME)
    # Who asked (an IAM principal's ARN, a Slack user): whose in-flight limit it counts on.
    requested_by: str | None = Field(default=None, max_length=MAX_URL)
    # Where its layers go and who they are shared with (chalicelib.distribution).
    regions: list[str] = Field(default_factory=list, max_length=MAX_REGIONS)
    share: list[str] = Field(default_factory=list, max_length=MAX_SHARE * 2)
    # Retention: a later proven build of the same spec replaced this one; its versions go
    # at expires_at (the expiry task), and deleted_at is the tombstone once they are gone.
    superseded_by: str | None = Field(default=None, max_length=MAX_NAME)
    superseded_at: str | None = Field(default=None, max_length=MAX_NAME)
    expires_at: str | None = Field(default=None, max_length=MAX_NAME)
    deleted_at: str | None = Field(default=None, max_length=MAX_NAME)

    def notify_targets(self) -> list[NotifyTarget]:
        return [t for t in (self.notify, *self.watchers) if t is not None]

    @model_validator(mode="after")
    def _first_step(self) -> BuildRecord:
        if not self.steps:
            self.steps[self.status.value] = self.created_at
        return self


class LayerManifest(BaseModel):
    """``manifest.json`` written beside each layer zip by the build scripts."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["runtime", "packages"]
    layer_name: str
    zip_name: str
    r_version: str
    architecture: Architecture
    recipe_hash: str
    packages: dict[str, str] = Field(default_factory=dict)
    # What put each package in the layer: "(requested)" and/or the packages importing it.
    pulled_in_by: dict[str, list[str]] = Field(default_factory=dict)
    shared_libraries: list[str] = Field(default_factory=list)
    file_count: int
    zipped_bytes: int
    unzipped_bytes: int
    sha256: str
    configure_flags: list[str] = Field(default_factory=list)
    build_seconds: float
    reused_runtime: bool = False
    # The OS the layer was built in ("debian-bullseye-<package list hash>" locally,
    # "amazonlinux-2023" on CodeBuild) and the newest glibc / GLIBCXX its ELF files need
    # (None: none needs one); the ABI gate checks both against what it reads.
    build_root: str = Field(min_length=1, max_length=128)
    needs_glibc: str | None = None
    needs_glibcxx: str | None = None


# Query strings of GET /builds and GET /layers (and the Slack commands that list them).
class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: BuildStatus | None = None
    limit: int = Field(default=20, ge=1, le=100)
    next: str | None = Field(default=None, max_length=MAX_TOKEN)


class LayersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r_version: str | None = Field(
        default=None, max_length=MAX_R_VERSION, json_schema_extra=R_VERSION_SCHEMA
    )
    architecture: Architecture | None = None

    @field_validator("r_version")
    @classmethod
    def _r_version(cls, value: str | None) -> str | None:
        if value is not None:
            parse_r_version(value)
        return value
