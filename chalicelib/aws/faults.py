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
