"""The one exception tree of rlayer.

Every error the project raises on purpose derives from :class:`RLayerError`. Each class
carries the HTTP status it maps to (used in one place, ``chalicelib.api.responses``); the
pipeline's task errors are also named, by class name, in the ASL's ``Catch.ErrorEquals``,
because Lambda reports an unhandled exception's class name as its ``errorType``.

    RLayerError
    ├── RequestInvalidError      400  bad input, names the field
    │   └── PayloadTooLargeError 413  a request body or invoke payload over its limit
    ├── SignatureInvalidError    401  Slack request not signed by us / stale
    ├── ForbiddenError           403  team or channel not allowed
    ├── NotFoundError            404
    ├── ConflictError            409  a record is not in the state the change expects
    │   └── TransitionRejectedError   status would move backwards or repeat
    ├── TooManyBuildsError       429  the caller has its limit of builds in flight
    ├── InternalError            500  anything unforeseen; the body shows only a request id
    │   └── ConfigurationError        settings missing or inconsistent
    ├── UpstreamError            502  an AWS service / feed / build backend failed
    │   ├── FeedError                 the R release feed is down or returned garbage
    │   ├── PackageIndexError         the package repository's index cannot be read
    │   ├── SlackPostError            a message could not be posted to Slack (logged only)
    │   └── TransientError       503  throttled / transient AWS fault: the ASL retries the
    │                                 task, a route answers 503 with Retry-After
    └── PipelineError            task errors, named in state_machine.asl.json
        ├── BuildStartError
        ├── BuildFailedError
        ├── BuildTimedOutError
        ├── ArtifactInvalidError
        ├── PublishError
        └── CanaryFailedError
"""

from __future__ import annotations

from pydantic import ValidationError


class RLayerError(Exception):
    """Base of every error rlayer raises on purpose."""

    http_status = 500
    # Seconds a client should wait before trying again (the Retry-After header), if any.
    retry_after: int | None = None
    # False: the message may name internals (a table, an AWS error); an HTTP caller sees
    # a generic text and a request id instead, the log has the real one.
    public = True

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        body = {"error": type(self).__name__, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class RequestInvalidError(RLayerError):
    http_status = 400


class PayloadTooLargeError(RequestInvalidError):
    """A request body over the API's limit, or an invoke payload over Lambda's 6 MB."""

    http_status = 413


class SignatureInvalidError(RLayerError):
    http_status = 401


class ForbiddenError(RLayerError):
    http_status = 403


class NotFoundError(RLayerError):
    http_status = 404


class ConflictError(RLayerError):
    http_status = 409


class TransitionRejectedError(ConflictError):
    """A status update that would not move the record forward (late or duplicate step)."""


class TooManyBuildsError(RLayerError):
    """The caller already has as many builds in flight as the stage allows."""

    http_status = 429
    retry_after = 60  # a build takes minutes; asking again sooner only repeats the refusal


class InternalError(RLayerError):
    """Something we did not foresee, or an AWS call that failed for good."""

    http_status = 500
    public = False


class ConfigurationError(InternalError):
    pass


class UpstreamError(RLayerError):
    http_status = 502


class FeedError(UpstreamError):
    """The R release feed could not be read or did not parse."""


class PackageIndexError(UpstreamError):
    """The repository's PACKAGES index could not be read (the package checks then wait
    for the build: see chalicelib.packages)."""


class SlackPostError(UpstreamError):
    """Slack refused or could not be reached; a build never fails because of it."""


class TransientError(UpstreamError):
    """Throttling or a transient AWS fault; the ASL's Retry names this class."""

    http_status = 503
    retry_after = 5  # past the clients' own backoff (standard mode): a short wait is enough
    public = False


class PipelineError(RLayerError):
    """Raised by a task function; the class name is the Lambda ``errorType``."""


class BuildStartError(PipelineError):
    pass


class BuildFailedError(PipelineError):
    pass


class BuildTimedOutError(PipelineError):
    pass


class ArtifactInvalidError(PipelineError):
    pass


class PublishError(PipelineError):
    pass


class CanaryFailedError(PipelineError):
    pass


def request_invalid(exc: ValidationError, *, prefix: str = "") -> RequestInvalidError:
    """The first pydantic error as our error, naming the field (``body`` for bad JSON)."""
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"]) or "body"
    if first["type"] == "json_invalid":
        return RequestInvalidError(f"the body is not valid JSON: {first['msg']}", field="body")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "is not a known field"
    field = f"{prefix}{loc}"
    return RequestInvalidError(f"{field}: {message}", field=field)
