"""Reading secrets from Secrets Manager or SSM Parameter Store, cached for a few minutes.

The reference names its store: a Secrets Manager ARN or ``secretsmanager:<name>`` reads a
secret; an SSM ARN, ``ssm:<name>`` or any other name reads a SecureString parameter.
Powertools' providers do the fetching and the time-bounded cache (a rotated secret is
picked up within ``MAX_AGE_S``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from chalicelib.aws.session import client
from chalicelib.errors import ConfigurationError

MAX_AGE_S = 300

_providers: dict[str, Any] = {}


def _provider(service: str) -> Any:
    # One provider per service and process, so its cache outlives a single call.
    if service not in _providers:
        if service == "secretsmanager":
            _providers[service] = SecretsProvider(boto3_client=client("secretsmanager"))
        else:
            _providers[service] = SSMProvider(boto3_client=client("ssm"))
    return _providers[service]


def locate(reference: str) -> tuple[str, str]:
    """(service, name) for a secret reference."""
    # arn:<partition>:secretsmanager:... in any partition (aws, aws-cn, aws-us-gov).
    if reference.startswith("arn:") and reference.split(":")[2:3] == ["secretsmanager"]:
        return "secretsmanager", reference
    if reference.startswith("secretsmanager:"):
        return "secretsmanager", reference.removeprefix("secretsmanager:")
    return "ssm", reference.removeprefix("ssm:")


def read_secret(reference: str) -> str:
    """The secret's string value; ConfigurationError when it cannot be read."""
    service, name = locate(reference)
    try:
        if service == "secretsmanager":
            value = _provider(service).get(name, max_age=MAX_AGE_S)
        else:
            value = _provider(service).get(name, max_age=MAX_AGE_S, decrypt=True)
    except GetParameterError as exc:
        raise ConfigurationError(f"cannot read secret {reference!r}: {exc}") from exc
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"secret {reference!r} is empty or not a string")
    return value


def clear_cache() -> None:
    """Forget providers and cached values (tests switch between moto instances)."""
    _providers.clear()
