"""Reading a document from upstream (the release feed, a package index) with a bounded wait.

urllib rather than an HTTP library: these are single GETs of small documents, file:// URLs
must work the same (the local stack), and the Lambda bundle stays free of another client.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request

from chalicelib.errors import UpstreamError

_CHUNK = 64 * 1024


def read_url(
    url: str,
    *,
    timeout_s: float,
    max_bytes: int,
    what: str,
    error: type[UpstreamError] = UpstreamError,
    accept: str = "*/*",
) -> bytes:
    """The body at ``url``, or ``error`` naming ``what`` when it is unreachable, slow,
    failing or larger than ``max_bytes``.

    ``timeout_s`` bounds each wait (connect, each read) and the body as a whole: a server
    that drips bytes just under the socket timeout is cut off at the deadline too, so a
    read never waits much more than twice the timeout in total.
    """
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "rlayer"})
    deadline = time.monotonic() + timeout_s
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    raise error(f"{what} took longer than {timeout_s:g} s to answer")
                # read1: at most one socket read, so the deadline is checked between reads.
                chunk = response.read1(_CHUNK)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > max_bytes:
                    raise error(f"{what} is larger than {max_bytes} bytes")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        raise error(f"{what} answered HTTP {exc.code}") from exc
    except TimeoutError as exc:
        raise error(f"{what} did not answer within {timeout_s:g} s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise error(f"{what} did not answer within {timeout_s:g} s") from exc
        raise error(f"{what} could not be reached: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, bad responses
        raise error(f"{what} could not be read: {exc or type(exc).__name__}") from exc
