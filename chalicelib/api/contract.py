"""What the HTTP API accepts and answers, as pydantic models, and the table of its routes.

The routes validate with these models and build their answers from them, and
``chalicelib.api.openapi`` renders the same table as the OpenAPI document: one source, so
the document cannot drift from what the code does (a test also checks the table against
the routes Chalice has).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.catalog_queries import CatalogQuery, LatestQuery
from chalicelib.api.catalog_routes import PUBLIC as PUBLIC_CATALOG
from chalicelib.catalog import Catalog, LatestLayers
from chalicelib.models import (
    MAX_NAME,
    MAX_TOKEN,
    MAX_URL,
    BuildRecord,
    BuildRequest,
    BuildStatus,
    ListQuery,
)
from chalicelib.pipeline.contracts import BUILD_ID_RE
from chalicelib.releases.records import ReleaseRecord, TriggeredBuild
from chalicelib.releases.runs import CHECK_ID_RE, CheckRun, CheckState
from chalicelib.slack.commands import SlashCommand
from chalicelib.subscriptions import Subscription, SubscriptionRequest

SUBSCRIPTION_ID_PATTERN = r"^sub-[0-9a-f]{12}$"


# -- errors ------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    """Every error answer. ``field`` names the part of the request at fault, where one is;
    a 5xx shows no cause, only ``request_id`` (also in the ``X-Request-Id`` header)."""

    error: str = Field(description="the error's class, e.g. RequestInvalidError")
    message: str
    field: str | None = None
    request_id: str | None = None


# -- path and query parameters ------------------------------------------------------------
class BuildPath(BaseModel):
    build_id: str = Field(pattern=BUILD_ID_RE.pattern, max_length=80)


class SubscriptionPath(BaseModel):
    subscription_id: str = Field(pattern=SUBSCRIPTION_ID_PATTERN, max_length=16)


class CheckPath(BaseModel):
    check_id: str = Field(pattern=CHECK_ID_RE.pattern, max_length=16)


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")

    next: str | None = Field(default=None, max_length=MAX_TOKEN)


class SubscriptionsQuery(Page):
    limit: int = Field(default=50, ge=1, le=100)


class ReleasesQuery(Page):
    limit: int = Field(default=20, ge=1, le=100)


# -- answers ----------------------------------------------------------------------------
class BuildAccepted(BaseModel):
    build_id: str
    status: BuildStatus
    status_url: str
    execution_arn: str | None = None
    # True when a queued, running or proven build of the same spec answered instead.
    duplicate_of_request: bool = False


class BuildList(BaseModel):
    builds: list[BuildRecord]
    next: str | None = None


class SubscriptionList(BaseModel):
    subscriptions: list[Subscription]
    next: str | None = None


class TriggeredBuildView(TriggeredBuild):
    status_url: str


class ReleaseView(ReleaseRecord):
    builds: list[TriggeredBuildView] = Field(default_factory=list)  # type: ignore[assignment]


class ReleaseList(BaseModel):
    releases: list[ReleaseView]
    next: str | None = None


class CheckAccepted(BaseModel):
    """A release check started by this request, or the one already running."""

    check_id: str
    state: CheckState
    status_url: str
    requested_at: str
    # True when a check already running answered instead of a new one.
    duplicate_of_request: bool = False


class CheckRunView(CheckRun):
    status_url: str


class SlackReply(BaseModel):
    """A slash command's answer; Slack shows its text (only to the user, if ephemeral)."""

    model_config = ConfigDict(extra="allow")

    response_type: Literal["ephemeral", "in_channel"]
    text: str = Field(max_length=MAX_URL * 2)


class SlackForm(SlashCommand):
    """The form Slack posts, signed in ``X-Slack-Signature`` over the raw body."""


class OpenApiDocument(BaseModel):
    model_config = ConfigDict(extra="allow")

    openapi: str = Field(max_length=MAX_NAME)


# -- the routes ---------------------------------------------------------------------------
JSON = "application/json"
CSV = "text/csv"
HTML = "text/html"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    ok: int
    answer: type[BaseModel] | None
    body: type[BaseModel] | None = None
    body_type: str = JSON
    query: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    # The error statuses this route answers besides 500 and 503 (which every route may).
    errors: tuple[int, ...] = ()
    # Other success statuses with the same answer.
    also: tuple[int, ...] = ()
    # Slack cannot sign with SigV4: its route checks Slack's own signature instead.
    iam: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    # What a success answers: the answer model as JSON, and the other forms it may take.
    media: tuple[str, ...] = (JSON,)


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/builds",
        "Request a build (202), or be answered by a running or proven build of the spec (200)",
        202,
        BuildAccepted,
        body=BuildRequest,
        errors=(400, 409, 413, 429),
        also=(200,),
    ),
    Operation(
        "GET",
        "/builds",
        "List builds, newest first",
        200,
        BuildList,
        query=ListQuery,
        errors=(400,),
    ),
    Operation(
        "GET",
        "/builds/{build_id}",
        "One build",
        200,
        BuildRecord,
        path_params=BuildPath,
        errors=(400, 404),
    ),
    Operation(
        "GET",
        "/layers",
        "Proven layers, with their ARNs per region, sharing, expiry and tombstones",
        200,
        Catalog,
        query=CatalogQuery,
        errors=(400,),
        iam=not PUBLIC_CATALOG,
        media=(JSON, CSV),
    ),
    Operation(
        "GET",
        "/layers/latest",
        "The newest proven layers of a spec in a region, in the order to attach them",
        200,
        LatestLayers,
        query=LatestQuery,
        errors=(400, 404),
        iam=not PUBLIC_CATALOG,
        media=(JSON, CSV),
    ),
    Operation(
        "GET",
        "/catalog",
        "The catalog as a web page (it reads GET /layers)",
        200,
        None,
        iam=not PUBLIC_CATALOG,
        media=(HTML,),
    ),
    Operation(
        "POST",
        "/subscriptions",
        "Rebuild a spec on every new R release",
        201,
        Subscription,
        body=SubscriptionRequest,
        errors=(400, 409, 413),
    ),
    Operation(
        "GET",
        "/subscriptions",
        "List subscriptions",
        200,
        SubscriptionList,
        query=SubscriptionsQuery,
        errors=(400,),
    ),
    Operation(
        "GET",
        "/subscriptions/{subscription_id}",
        "One subscription",
        200,
        Subscription,
        path_params=SubscriptionPath,
        errors=(400, 404),
    ),
    Operation(
        "DELETE",
        "/subscriptions/{subscription_id}",
        "Remove a subscription",
        204,
        None,
        path_params=SubscriptionPath,
        errors=(400, 404),
    ),
    Operation(
        "GET",
        "/releases",
        "R releases the scheduler has seen",
        200,
        ReleaseList,
        query=ReleasesQuery,
        errors=(400,),
    ),
    Operation(
        "POST",
        "/releases/check",
        "Start the release check now (202), or be answered by the one running",
        202,
        CheckAccepted,
        errors=(409,),
    ),
    Operation(
        "GET",
        "/releases/checks/{check_id}",
        "One requested release check: RUNNING, then SUCCEEDED with its result or FAILED",
        200,
        CheckRunView,
        path_params=CheckPath,
        errors=(400, 404),
    ),
    Operation(
        "POST",
        "/slack/commands",
        "The /rlayer slash command (Slack's signature, not IAM)",
        200,
        SlackReply,
        body=SlackForm,
        body_type=FORM,
        errors=(401, 413),
        iam=False,
        headers={
            "X-Slack-Signature": "v0= and the HMAC-SHA256 of the body",
            "X-Slack-Request-Timestamp": "Unix seconds; at most 5 minutes old",
        },
    ),
    Operation("GET", "/openapi.json", "This document", 200, OpenApiDocument),
)
