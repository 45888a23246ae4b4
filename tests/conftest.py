"""Fixtures shared by every test layer: an isolated AWS environment on moto."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Never reach a real AWS account from a test, whatever the developer's shell holds.
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_var, None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "rlayer",
    }
)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    from chalicelib.aws.session import reset_clients
    from chalicelib.settings import reset_settings

    reset_settings()
    reset_clients()
    yield
    reset_settings()
    reset_clients()
