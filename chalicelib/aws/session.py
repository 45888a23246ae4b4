"""boto3 clients, created once per process and region."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.settings import get_settings

# Standard retry mode backs off on throttling; adaptive would add client-side rate limiting
# we do not need for a handful of calls per build.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@lru_cache(maxsize=32)
def client(service: str, region: str | None = None) -> Any:
    return boto3.client(service, region_name=region or get_settings().aws_region, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints between moto instances)."""
    client.cache_clear()
