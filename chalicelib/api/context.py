"""What a route needs from the environment: settings, the store, its own base URL."""

from __future__ import annotations

from chalice.app import Request

from chalicelib.aws.store import Store
from chalicelib.settings import Settings, get_settings


def settings() -> Settings:
    return get_settings()


def store() -> Store:
    return Store(get_settings().table_name)


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
