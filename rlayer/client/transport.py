"""How the API client moves bytes: one function from request to response.

The seam for tests and for signing; the default is the standard library's urllib (the
client makes a handful of small JSON calls, so a dependency buys nothing).
"""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chalicelib.errors import UpstreamError


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


Transport = Callable[[HttpRequest], HttpResponse]


def is_local(url: str) -> bool:
    """True for the local stack (loopback), which has no IAM and must not be signed for."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def urllib_transport(timeout: float = 30.0) -> Transport:
    def send(request: HttpRequest) -> HttpResponse:
        req = urllib.request.Request(
            request.url, data=request.body, headers=request.headers, method=request.method
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return HttpResponse(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            # An HTTP error answer is still an answer: the client reads its JSON body.
            return HttpResponse(exc.code, dict(exc.headers.items()), exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            hint = " (is `rlayer serve` running?)" if is_local(request.url) else ""
            raise UpstreamError(
                f"cannot reach the rlayer API at {request.url}: {reason}{hint}"
            ) from exc

    return send
