"""What a route needs from the environment: settings, the store, its own base URL."""

from __future__ import annotations

from chalice.app import Request

from chalicelib.aws.store import Store
from chalicelib.settings import Settings, get_settings


def settings() -> Settings:
    return get_settings()


def store() -> Store:
    return Store(get_settings().table_name)


def caller(request: Request) -> str:
    """Who sent the request, for the per-caller limit.

    In AWS the IAM authorizer has verified the SigV4 signature, so API Gateway's identity
    names the principal (``userArn``: a user, or a role's session). Chalice local checks no
    signature and gives only the source address.
    """
    identity: dict[str, str | None] = (request.context or {}).get("identity") or {}
    for key in ("userArn", "caller", "accountId"):
        if identity.get(key):
            return f"iam:{identity[key]}"
    return f"ip:{identity.get('sourceIp') or 'unknown'}"


def base_url(request: Request) -> str:
    """The API's base URL as the caller reached it (for status links)."""
    configured = get_settings().api_base_url
    if configured:
        return configured.rstrip("/")
    headers: dict[str, str] = dict(request.headers or {})
    host = headers.get("host", "localhost")
    proto = headers.get("x-forwarded-proto", "http")
    stage = (request.context or {}).get("stage")
    # API Gateway's own domain carries the stage in the path; custom/local hosts do not.
    if stage and host.endswith(".amazonaws.com"):
        return f"{proto}://{host}/{stage}"
    return f"{proto}://{host}"
