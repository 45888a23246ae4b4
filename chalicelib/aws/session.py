"""boto3 clients, created once per process and region.

Every adapter in this package calls AWS through :func:`client`, so these clients are the
one seam for faults: a handler registered on a client's ``before-send`` event answers in
place of AWS (an HTTP status and an error body), and the adapter's own parsing, retries
and error mapping run as they would for a real answer (the tests inject throttling and
refusals this way, route by route).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.settings import get_settings


def client(service: str, region: str | None = None) -> Any:
    # The stack's region named or not: one client (its events are the seam above).
    return _client(service, region or get_settings().aws_region)


@lru_cache(maxsize=64)
def _client(service: str, region: str) -> Any:
    settings = get_settings()
    # Standard retry mode backs off on throttling; adaptive would add client-side rate
    # limiting we do not need for a handful of calls per build.
    config = Config(retries={"mode": "standard", "max_attempts": settings.aws_max_attempts})
    return boto3.client(service, region_name=region, config=config)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints between moto instances)."""
    _client.cache_clear()
