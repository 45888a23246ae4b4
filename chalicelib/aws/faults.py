"""Which AWS failures are worth retrying: the one classification the pipeline uses.

The clients already retry throttling a few times (standard mode, see ``session``); what
still fails here has outlasted that, and the task reports it as ``TransientError`` so the
state machine's ``Retry`` waits longer and tries the whole task again.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
)

from chalicelib.errors import InternalError, RLayerError, TransientError

# botocore's own lists (retries/standard.py) are private; these are the same codes plus
# Lambda's "the function is being updated" conflicts, which settle by themselves.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalServerError",
        "InternalServerErrorException",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ResourceConflictException",
        "ResourceNotReadyException",
    }
)
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or None
    return None


def is_transient(exc: BaseException) -> bool:
    """True for throttling, 5xx answers and connection trouble; False for everything else."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in THROTTLING_CODES or code in TRANSIENT_CODES:
            return True
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status in TRANSIENT_STATUS
    return isinstance(exc, ConnectionError | HTTPClientError)


def is_aws_error(exc: BaseException) -> bool:
    return isinstance(exc, ClientError | BotoCoreError)


def as_error(exc: BaseException) -> RLayerError:
    """Any exception as one of ours: how a route answers for it.

    Throttling and outages that outlasted the clients' retries become ``TransientError``
    (503, Retry-After); every other AWS failure and anything unforeseen an ``InternalError``
    (500) whose text stays in the log, never in the answer.
    """
    if isinstance(exc, RLayerError):
        return exc
    if is_aws_error(exc) and is_transient(exc):
        return TransientError(f"AWS is throttling or unavailable: {error_code(exc) or exc}")
    return InternalError(f"{type(exc).__name__}: {exc}")
